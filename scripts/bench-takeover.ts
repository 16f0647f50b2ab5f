/**
 * Takeover by key (issue #19): an encoder whose connection hangs reconnects with the
 * same key. Measured from the reconnect's TCP connect to the new publication's first
 * frame at a WebSocket viewer, on the same origin and from another origin, against
 * targets of 1 s and 1.5 s. The frozen publisher is an OBS-like ffmpeg stopped with
 * SIGSTOP; the reconnect replays an OBS-like clip over raw RTMP from this process
 * (so that no process start-up is counted, as none is in an encoder's reconnect).
 *
 *   node --import tsx scripts/bench-takeover.ts [--runs 5]
 *
 * Writes bench-results/takeover.json and takeover.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FIXTURE_OBS_LIKE, readFlvTags } from '../test/helpers/flv-file.ts';
import { startNats } from '../test/helpers/nats.ts';
import { startTestNode, type TestNode } from '../test/helpers/node-harness.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startPublisher } from '../test/helpers/publisher.ts';
import { watch } from '../test/helpers/ws-viewer.ts';
import { ReplayPublishers } from './lib/replay-publishers.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const KEY = 'takeover-bench-key-0123456789';
const streams = [{ name: 'cam', key: KEY }];
const tags = readFlvTags(readFileSync(FIXTURE_OBS_LIKE));
const out = new URL('../bench-results/', import.meta.url).pathname;

const nats = await startNats();
let nodeCount = 0;
const node = (roles: ('origin' | 'edge')[]) => startTestNode(roles, nats.url, { streams, cluster: { nodeId: `bench-${nodeCount++}` } });

/** One takeover: freeze a publisher on `from`, reconnect on `to`; ms from the reconnect's connect to the viewer's first new frame. */
async function takeover(from: TestNode, to: TestNode, edge: TestNode): Promise<number> {
  const viewer = watch(edge.wsUrl('cam'));
  const frozen = startPublisher({ url: from.rtmpUrl(KEY), size: '640x360', bitrate: '1000k' });
  const replay = new ReplayPublishers(tags, new URL(to.rtmpUrl('').replace(/\/$/, '')));
  try {
    await waitFor('frames from the first publisher', () => viewer.record.fragments.length > 30, 20_000);
    frozen.process.kill('SIGSTOP');
    const inits = viewer.record.initSegments;
    const connectAt = Date.now();
    replay.add(KEY);
    await waitFor(
      'the new publication at the viewer',
      () => viewer.record.initSegments > inits && viewer.record.fragments.length > viewer.record.initAt.at(-1)!,
      15_000,
    );
    return viewer.record.fragments[viewer.record.initAt.at(-1)!]!.at - connectAt;
  } finally {
    replay.close();
    frozen.process.kill('SIGCONT');
    await frozen.stop();
    viewer.close();
    await waitFor('the stream to end', () => [from, to].every((n) => n.node.origin!.liveStreams().length === 0), 15_000);
  }
}

const stats = (ms: number[]) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, worst: sorted.at(-1)!, runs: ms };
};

const single = await node(['origin', 'edge']);
const same: number[] = [];
for (let i = 0; i < runs; i++) same.push(await takeover(single, single, single));
await single.node.close();

const a = await node(['origin']);
const b = await node(['origin']);
const edge = await node(['edge']);
const across: number[] = [];
for (let i = 0; i < runs; i++) across.push(await takeover(a, b, edge));
for (const n of [edge, b, a]) await n.node.close();
await nats.cleanup();

const result = { at: new Date().toISOString(), sameOrigin: stats(same), otherOrigin: stats(across), targets: { sameOriginMs: 1000, otherOriginMs: 1500 } };
const md = [
  `Takeover by key, ${result.at} (\`node --import tsx scripts/bench-takeover.ts --runs ${runs}\`): a frozen OBS-like ffmpeg (SIGSTOP), its reconnect replayed over raw RTMP; from the reconnect's TCP connect to the new publication's first frame at a WebSocket viewer.`,
  '',
  '| case | median | worst | target | runs (ms) |',
  '|---|---|---|---|---|',
  `| same origin | ${result.sameOrigin.median} ms | ${result.sameOrigin.worst} ms | <= 1000 ms | ${same.join(', ')} |`,
  `| another origin (asked over NATS) | ${result.otherOrigin.median} ms | ${result.otherOrigin.worst} ms | <= 1500 ms | ${across.join(', ')} |`,
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}takeover.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}takeover.md`, md);
process.stdout.write(md);
process.exit(0);
