import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LlHlsClient } from '../helpers/ll-hls-client.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { scrape, sample } from '../helpers/prometheus.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'hls-cdn-key-0123456789';
const CLIENTS = 200;

/**
 * The example CDN configuration of the README: nginx caching what the edge says may be
 * cached (immutable parts; blocking playlist answers by their query), one request
 * upstream per URL at a time (proxy_cache_lock), so that held requests collapse.
 */
export function nginxCdnConfig(dir: string, port: number, edge: string): string {
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=hls:16m max_size=1g inactive=2m use_temp_path=off;
  upstream edge { server ${edge}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location /hls/ {
      proxy_pass http://edge;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache hls;
      proxy_cache_key $uri$is_args$args;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_lock_age 10s;
      proxy_read_timeout 15s;
    }
  }
}
`;
}

describe('a CDN in front of an edge (nginx caching, 200 LL-HLS clients)', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let nginx: ChildProcess;
  let cdn: string;
  const dir = mkdtempSync(join(tmpdir(), 'hls-cdn-'));

  before(async () => {
    relay = await startRelay('all', { RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]), RELAY_LOG_LEVEL: 'warn' });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '320x180', bitrate: '300k', gop: 30 });
    const port = await freePort();
    writeFileSync(join(dir, 'nginx.conf'), nginxCdnConfig(dir, port, `127.0.0.1:${relay.httpPort}`));
    nginx = spawn('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
    cdn = `http://127.0.0.1:${port}`;
    await waitFor(
      'the stream through the CDN',
      async () => {
        if (nginx.exitCode !== null) throw new Error('nginx exited');
        const res = await fetch(`${cdn}/hls/cam/source/index.m3u8`).catch(() => undefined);
        return res?.ok && (await res.text()).includes('#EXTINF');
      },
      30_000,
      200,
    );
  });

  after(async () => {
    nginx?.kill('SIGTERM');
    await publisher?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the edge sees each part requested about once, and each blocking playlist question about once, while 200 clients play', async () => {
    const edgeCount = async (kind: string) => sample(await scrape(relay.http), 'relay_hls_requests_total', { kind, status: '200' }) ?? 0;
    const clients = Array.from({ length: CLIENTS }, () => new LlHlsClient(`${cdn}/hls/cam/source/index.m3u8`));
    // Let every client reach the live edge, then count over a window.
    await waitFor('every client fetching parts', () => clients.every((c) => c.stats.parts >= 2), 30_000);
    const [parts0, playlists0] = [await edgeCount('part'), await edgeCount('media')];
    const clientParts0 = clients.reduce((n, c) => n + c.stats.parts, 0);
    await new Promise((r) => setTimeout(r, 10_000));
    const [parts1, playlists1] = [await edgeCount('part'), await edgeCount('media')];
    const clientParts = clients.reduce((n, c) => n + c.stats.parts, 0) - clientParts0;
    await Promise.all(clients.map((c) => c.stop()));
    const madeParts = 10 / 0.334; // parts the stream made in the window, about
    const edgeParts = parts1 - parts0;
    const edgePlaylists = playlists1 - playlists0;
    process.stderr.write(
      `# CDN: ${CLIENTS} clients fetched ${clientParts} parts in 10 s; the edge served ${edgeParts} parts and ${edgePlaylists} playlists (${(edgeParts / madeParts).toFixed(2)} requests per part made)\n`,
    );
    assert.ok(clientParts >= CLIENTS * madeParts * 0.8, `clients played: ${clientParts} parts`);
    assert.ok(edgeParts <= madeParts * 1.5, `the edge served ${edgeParts} part requests for about ${Math.round(madeParts)} parts`);
    assert.ok(edgePlaylists <= madeParts * 3, `the edge served ${edgePlaylists} playlist requests`);
    assert.equal(
      clients.reduce((n, c) => n + c.stats.errors, 0),
      0,
      'no client saw an error',
    );
  });
});
