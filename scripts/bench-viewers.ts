/**
 * Misbehaving viewers, measured (issue #8): viewers that never read, throttled
 * readers and bursts of thousands of connects and disconnects, beside good
 * viewers of the same stream. Writes bench-results/viewers.{json,md}.
 *
 *   node --import tsx scripts/bench-viewers.ts [--good 20] [--stalled 500] [--throttled 200] [--churn 1000] [--bursts 5] [--seconds 30]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { abuseRun } from './lib/misbehaving-viewers.ts';

const { values } = parseArgs({ options: {
  good: { type: 'string', default: '20' }, stalled: { type: 'string', default: '500' }, throttled: { type: 'string', default: '200' },
  churn: { type: 'string', default: '1000' }, bursts: { type: 'string', default: '5' }, seconds: { type: 'string', default: '30' },
} });
// The fixture stream is about 2.7 Mbit/s; throttled readers take a third of it.
const rows = await abuseRun({
  good: Number(values.good), stalled: Number(values.stalled), throttled: Number(values.throttled), throttledBytesPerSecond: 110_000,
  churnBurst: Number(values.churn), churnBursts: Number(values.bursts), phaseSeconds: Number(values.seconds),
}, (line) => process.stderr.write(line + '\n'));
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/viewers.json', JSON.stringify({ at: new Date().toISOString(), rows }, null, 1));
const md = [
  '| phase | edge RSS MB (start / peak / end) | heap MB peak | open fds peak | edge CPU % | good viewers: frames lost | longest wait for a frame (ms) | bad viewers closed by the edge | VIEWER_TOO_SLOW | skips to a keyframe |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.phase} | ${r.edgeRssMb.start} / ${r.edgeRssMb.peak} / ${r.edgeRssMb.end} | ${r.edgeHeapMb.peak} | ${r.edgeFds.peak} | ${r.edgeCpuPercent} | ${r.goodLost} | ${r.goodLongestWaitMs} | ${r.badClosedByServer} of ${r.badClosedByServer + r.badOpen} | ${r.viewersDisconnectedSlow} | ${r.viewersSkipped} |`),
].join('\n');
writeFileSync('bench-results/viewers.md', md + '\n');
process.stdout.write(md + '\n');
