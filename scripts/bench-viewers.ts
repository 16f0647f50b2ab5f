/**
 * Misbehaving viewers, measured (issue #8): viewers that never read, throttled
 * readers and bursts of thousands of connects and disconnects, beside good
 * viewers of the same stream. Writes bench-results/viewers.{json,md}.
 *
 *   node --import tsx scripts/bench-viewers.ts [--good 20] [--stalled 500] [--throttled 200] [--churn 1000] [--bursts 5] [--seconds 30] [--fat]
 *
 * --fat publishes a 20 Mbit/s clip (noise, cheap to encode) instead of the 2.7 Mbit/s one:
 * on loopback a reader's kernel buffers take up to tcp_rmem's maximum (32 MiB on these
 * machines) before the edge's own queue grows, so only a fat stream shows the edge's
 * policy (skip to a keyframe, then VIEWER_TOO_SLOW) within a phase.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { abuseRun } from './lib/misbehaving-viewers.ts';

const { values } = parseArgs({
  options: {
    good: { type: 'string', default: '20' },
    stalled: { type: 'string', default: '500' },
    throttled: { type: 'string', default: '200' },
    churn: { type: 'string', default: '1000' },
    bursts: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '30' },
    fat: { type: 'boolean', default: false },
  },
});
let file: string | undefined;
if (values.fat) {
  file = join(mkdtempSync(join(tmpdir(), 'bench-viewers-')), 'noisy.flv');
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=320x240:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=sample_rate=48000',
    '-t',
    '4',
    '-vf',
    'noise=alls=80:allf=t',
    '-c:v',
    'libx264',
    '-profile:v',
    'high',
    '-preset',
    'ultrafast',
    '-bf',
    '2',
    '-g',
    '30',
    '-crf',
    '10',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-ar',
    '48000',
    '-f',
    'flv',
    file,
  ]);
}
const rateBytes = file ? 2_500_000 : 330_000;
// Throttled readers take a third of the stream's rate.
const rows = await abuseRun(
  {
    good: Number(values.good),
    stalled: Number(values.stalled),
    throttled: Number(values.throttled),
    throttledBytesPerSecond: Math.round(rateBytes / 3),
    churnBurst: Number(values.churn),
    churnBursts: Number(values.bursts),
    phaseSeconds: Number(values.seconds),
    file,
  },
  (line) => process.stderr.write(line + '\n'),
);
const name = values.fat ? 'viewers-fat' : 'viewers';
mkdirSync('bench-results', { recursive: true });
writeFileSync(`bench-results/${name}.json`, JSON.stringify({ at: new Date().toISOString(), fat: values.fat, rows }, null, 1));
const md = [
  // (How many bad viewers the edge closed comes from its own metric: a client that never reads never sees the close.)
  '| phase | edge RSS MB (start / peak / end) | heap MB peak | open fds (peak / end) | edge CPU % | good viewers: frames lost | longest wait for a frame (ms) | closed as VIEWER_TOO_SLOW | skips to a keyframe |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.phase} | ${r.edgeRssMb.start} / ${r.edgeRssMb.peak} / ${r.edgeRssMb.end} | ${r.edgeHeapMb.peak} | ${r.edgeFds.peak} / ${r.edgeFds.end} | ${r.edgeCpuPercent} | ${r.goodLost} | ${r.goodLongestWaitMs} | ${r.viewersDisconnectedSlow} | ${r.viewersSkipped} |`,
  ),
].join('\n');
writeFileSync(`bench-results/${name}.md`, md + '\n');
process.stdout.write(md + '\n');
