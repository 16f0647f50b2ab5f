/**
 * Relay benchmark (issue 2 targets): relay latency, origin receipt -> edge socket
 * write, at 1 and 20 live streams; time to first frame and glass-to-glass in
 * Chromium. Real parts only: the relay CLI with its own nats-server, ffmpeg
 * publishers (an OBS-like 720p clip sent with -c copy), WebSocket viewers,
 * headless Chromium.
 *
 *   node --import tsx scripts/bench-relay.ts [--streams 1,20] [--seconds 20] [--no-browser]
 *
 * Writes bench-results/relay.json and bench-results/relay.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { browserRun, latencyRun, makeClip, type LatencyRow } from './lib/relay-latency.ts';

const { values } = parseArgs({
  options: { streams: { type: 'string', default: '1,20' }, seconds: { type: 'string', default: '20' }, 'no-browser': { type: 'boolean', default: false } },
});
const streamCounts = values.streams.split(',').map(Number);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });

const clip = makeClip();
const latency: LatencyRow[] = [];
for (const n of streamCounts) {
  process.stderr.write(`relay latency with ${n} live stream(s), ${seconds} s window...\n`);
  latency.push(await latencyRun(clip, n, seconds));
  process.stderr.write(JSON.stringify(latency.at(-1)) + '\n');
}
const viewer = values['no-browser'] ? undefined : await browserRun(clip);
const result = { date: new Date().toISOString(), machine: { cores: (await import('node:os')).cpus().length, node: process.version }, seconds, latency, viewer };
writeFileSync(join(out, 'relay.json'), JSON.stringify(result, null, 2) + '\n');
const md = [
  '| streams (720p30, 2.5 Mbit/s, B-frames) | relay latency p50 | p99 | viewer-side p50 | p99 | frames missing | relay CPU |',
  '|---|---|---|---|---|---|---|',
  ...latency.map((r) => `| ${r.streams} | ${r.p50Ms} ms | ${r.p99Ms} ms | ${r.clientP50Ms} ms | ${r.clientP99Ms} ms | ${r.missing} | ${r.relayCpuPercent}% |`),
  '',
  ...(viewer
    ? [
        '| Chromium (MSE) | p50 | worst / p95 | samples |',
        '|---|---|---|---|',
        `| time to first frame (WebSocket open -> first decoded frame) | ${viewer.ttffP50Ms} ms | ${viewer.ttffMaxMs} ms | ${viewer.loads} page loads |`,
        `| glass-to-glass (ingest -> displayed) | ${viewer.g2gP50Ms} ms | ${viewer.g2gP95Ms} ms | ${viewer.g2gSamples} frames |`,
      ]
    : []),
].join('\n');
writeFileSync(join(out, 'relay.md'), md + '\n');
process.stdout.write(md + '\n');
