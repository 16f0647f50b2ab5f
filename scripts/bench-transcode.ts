/**
 * Transcoding benchmark (issue 4 targets): the latency a transcoded rendition adds
 * over passthrough, ffmpeg's cost per 720p30 rung, and full ladders per core.
 * Real parts: nats-server, the relay (origin + edge) in this process, an OBS-like
 * ffmpeg publisher encoding 720p30 live (continuous timestamps, as OBS sends; a
 * looped clip's timestamp jumps make ffmpeg rewrite them), WebSocket viewers of
 * every rendition; ffmpeg's CPU is read from /proc.
 *
 *   node --import tsx scripts/bench-transcode.ts [--seconds 20]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../server/core/config/load.ts';
import type { Rung } from '../server/origin/transcode/ladder.ts';
import { startNats } from '../test/helpers/nats.ts';
import { startTestNode } from '../test/helpers/node-harness.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startPublisher } from '../test/helpers/publisher.ts';
import { watch } from '../test/helpers/ws-viewer.ts';
import { processStat, round } from './lib/figures.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '20' } } });
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const KEY = 'bench-transcode-key-012345';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface Run {
  ladder: string[];
  ffmpegCpuPercent: number;
  latencyMs: Record<string, number>;
  ingestTimeMissed: number;
  speed?: number;
  opusFrames: number;
}

async function run(ladder: Rung[]): Promise<Run> {
  const nats = await startNats();
  const relay = await startTestNode(['origin', 'edge'], nats.url, {
    streams: [{ name: 'cam', key: KEY }],
    transcode: { enabled: true, ladder },
    log: { level: 'warn' },
  });
  const publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '1280x720', bitrate: '2500k' });
  const renditions = ['source', ...ladder.map((r) => r.name)];
  const viewers = renditions.map((r) => ({ r, v: watch(`${relay.wsUrl('cam')}${r === 'source' ? '' : `?rendition=${r}`}`) }));
  try {
    await waitFor('every rendition flowing', () => viewers.every(({ v }) => v.record.fragments.length > 60), 60_000, 200);
    await new Promise((r) => setTimeout(r, 3000));
    const pid = relay.node.origin!.liveStreams()[0]!.transcoding!.pid!;
    const marks = viewers.map(({ v }) => v.record.fragments.length);
    const cpu0 = processStat(pid).cpu;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = (processStat(pid).cpu - cpu0) / ((Date.now() - t0) / 1000);
    const latencyMs: Record<string, number> = {};
    viewers.forEach(({ r, v }, i) => {
      latencyMs[r] = round(median(v.record.fragments.slice(marks[i]).flatMap((f) => (f.prftWallMs ? [f.at - f.prftWallMs] : []))));
    });
    const stats = relay.node.origin!.liveStreams()[0]!.transcoding!.transcoderStats;
    return {
      ladder: ladder.map((r) => r.name),
      ffmpegCpuPercent: round(cpu * 100),
      latencyMs,
      ingestTimeMissed: stats?.ingestTimeMissed ?? 0,
      speed: stats?.speed && round(stats.speed, 3),
      opusFrames: stats?.opusFrames ?? 0,
    };
  } finally {
    viewers.forEach(({ v }) => v.close());
    await publisher.stop();
    await relay.node.close();
    await nats.cleanup();
  }
}

const defaults = loadConfig({ env: {} }).transcode.ladder;
process.stderr.write(`full ladder (${defaults.map((r) => r.name).join(', ')}), ${seconds} s...\n`);
const full = await run(defaults);
process.stderr.write(JSON.stringify(full) + '\n');
process.stderr.write(`720p rung alone, ${seconds} s...\n`);
const single = await run(defaults.filter((r) => r.name === '720p'));
process.stderr.write(JSON.stringify(single) + '\n');

const added = Object.fromEntries(
  Object.entries(full.latencyMs)
    .filter(([r]) => r !== 'source')
    .map(([r, ms]) => [r, round(ms - full.latencyMs.source!)]),
);
const result = {
  date: new Date().toISOString(),
  source: '1280x720 30 fps H.264 High with B-frames, 2.5 Mbit/s, AAC 48 kHz, encoded live',
  seconds,
  full,
  single,
  addedLatencyMs: added,
  laddersPerCore: round(100 / full.ffmpegCpuPercent, 2),
};
writeFileSync(join(out, 'transcode.json'), JSON.stringify(result, null, 2) + '\n');
const md = [
  '| transcoding figure (OBS-like 720p30 source, encoded live) | measured | target |',
  '|---|---|---|',
  `| latency, origin receipt -> viewer, source (passthrough) | ${full.latencyMs.source} ms (median) | |`,
  ...Object.entries(added).map(([r, ms]) => `| latency added by the ${r} rendition over passthrough | ${ms} ms (median) | <= 300 ms |`),
  `| ffmpeg CPU, one 720p30 rung (decode the 720p source + encode) | ${single.ffmpegCpuPercent}% of a core | measured |`,
  `| ffmpeg CPU, full ladder (${full.ladder.join(', ')}, with Opus beside AAC on 720p) | ${full.ffmpegCpuPercent}% of a core | measured |`,
  `| ffmpeg speed against real time, full ladder (smoothed) | ${full.speed}x | >= 1 |`,
  `| full ladders one core sustains | ${result.laddersPerCore} | measured |`,
  `| transcoded frames whose ingest time was not found (the figures above would hide latency) | ${full.ingestTimeMissed} | 0 |`,
].join('\n');
writeFileSync(join(out, 'transcode.md'), md + '\n');
process.stdout.write(md + '\n');
