import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import type { FastifyInstance } from 'fastify';

const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

/**
 * The player, bundled from its TypeScript modules (src/) by esbuild once, when
 * the edge starts (about 50 ms): one ES module for browsers, with the protocol
 * types it shares with the server checked by tsc like the rest of the code.
 */
export function bundlePlayer(): { js: string; map: string } {
  const result = buildSync({
    entryPoints: [fileURLToPath(new URL('./src/main.ts', import.meta.url))],
    outfile: 'player.js',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome105', 'firefox115', 'safari16'],
    write: false,
    sourcemap: 'linked',
    logLevel: 'silent',
  });
  const text = (suffix: string) => result.outputFiles.find((f) => f.path.endsWith(suffix))!.text;
  return { js: text('player.js'), map: text('player.js.map') };
}

const player = bundlePlayer();
/** hls.js, served from the dependency as it ships (the light build: LL-HLS without subtitles, alternate audio or DRM), loaded by the page only to play HLS. */
const HLS_JS = readFileSync(createRequire(import.meta.url).resolve('hls.js/dist/hls.light.min.js'), 'utf8');
const ASSETS: Record<string, { type: string; body: string }> = {
  'hls.js': { type: 'text/javascript; charset=utf-8', body: HLS_JS },
  'player.js': { type: 'text/javascript; charset=utf-8', body: player.js },
  'player.js.map': { type: 'application/json', body: player.map },
  'player.css': { type: 'text/css; charset=utf-8', body: file('player.css') },
};
const WATCH_HTML = file('watch.html');

/** The watch page for a stream, with the protocol the player starts with. */
export function watchPage(stream: string, protocol: string): string {
  return WATCH_HTML.replaceAll('{{stream}}', stream).replaceAll('{{protocol}}', protocol);
}

/** Serves the player's script and style at `/player/<file>`. */
export function attachPlayerAssets(app: FastifyInstance): void {
  for (const [name, asset] of Object.entries(ASSETS)) {
    app.get(`/player/${name}`, async (_req, reply) => reply.type(asset.type).send(asset.body));
  }
}
