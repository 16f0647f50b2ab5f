import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

/** The player's assets, read once: served as they are. */
const ASSETS: Record<string, { type: string; body: string }> = {
  'player.js': { type: 'text/javascript; charset=utf-8', body: file('player.js') },
  'abr.js': { type: 'text/javascript; charset=utf-8', body: file('abr.js') },
  'whep.js': { type: 'text/javascript; charset=utf-8', body: file('whep.js') },
  'player.css': { type: 'text/css; charset=utf-8', body: file('player.css') },
};
const WATCH_HTML = file('watch.html');

/** The watch page for a stream, with the protocol the player starts with. */
export function watchPage(stream: string, protocol: string): string {
  return WATCH_HTML.replaceAll('{{stream}}', stream).replaceAll('{{protocol}}', protocol);
}

/** Serves the player's scripts and style at `/player/<file>`. */
export function attachPlayerAssets(app: FastifyInstance): void {
  for (const [name, asset] of Object.entries(ASSETS)) {
    app.get(`/player/${name}`, async (_req, reply) => reply.type(asset.type).send(asset.body));
  }
}
