/**
 * Soak: N streams, M steady viewers and churn for a long time (30 minutes by
 * default), in the deployed layout: a nats-server, an origin process and an edge
 * process. Every 10 s it samples each process's resident memory, V8 heap and open
 * file descriptors (prom-client's own metrics), and nats-server's resident memory,
 * its Go heap live after the last collection (GODEBUG=gctrace=1) and the JetStream
 * consumers it holds (the edge's, one per stream watched, and nothing else). At the end:
 * the first and last five minutes side by side, the growth per hour (a least-squares
 * slope), what the steady viewers saw (frames lost, longest wait for a frame), and
 * how many churn viewers came and went. Writes bench-results/soak.{json,md}.
 *
 *   scripts/soak [--minutes 30] [--streams 4] [--viewers 40] [--churn 10]
 *     --churn: viewers opened per second, each staying 0.2-5 s (a tenth abort mid-handshake)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNats } from '../test/helpers/nats.ts';
import { FIXTURE_OBS_LIKE } from '../test/helpers/flv-file.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startRelay, type RelayProcess } from '../test/helpers/relay-process.ts';
import { processStat, round } from './lib/figures.ts';
import { ONE_ADDRESS_LOAD } from './lib/one-address.ts';
import { startReplay } from './lib/relay-latency.ts';
import { churnOnce, openViewer, type WsClient } from './lib/ws-clients.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    streams: { type: 'string', default: '4' },
    viewers: { type: 'string', default: '40' },
    churn: { type: 'string', default: '10' },
  },
});
const minutes = Number(values.minutes);
const streamCount = Number(values.streams);
const viewerCount = Number(values.viewers);
const churnPerSecond = Number(values.churn);
const SAMPLE_MS = 10_000;

interface Sample {
  t: number;
  origin: NodeFigures;
  edge: NodeFigures;
  nats: NatsFigures;
}
interface NatsFigures {
  rssMb: number;
  liveHeapMb: number;
  consumers: number;
}
interface NodeFigures {
  rssMb: number;
  heapMb: number;
  fds: number;
}

async function figures(node: RelayProcess): Promise<NodeFigures> {
  const text = await (await fetch(`${node.http}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]);
  return {
    rssMb: round(metric('process_resident_memory_bytes') / 2 ** 20),
    heapMb: round(metric('nodejs_heap_size_used_bytes') / 2 ** 20),
    fds: metric('process_open_fds'),
  };
}

/** Least-squares slope of y over t (ms), per hour. */
function perHour(points: { t: number; y: number }[]): number {
  const n = points.length;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return den === 0 ? 0 : round((num / den) * 3_600_000, 2);
}

const streams = Array.from({ length: streamCount }, (_, i) => ({ name: `soak${i}`, key: `soak-stream-key-${String(i).padStart(4, '0')}-abcdef` }));
const env = { RELAY_STREAMS: JSON.stringify(streams), RELAY_LOG_LEVEL: 'warn', ...ONE_ADDRESS_LOAD };
/** nats-server's Go heap after the last collection, from its gctrace lines ("12->13->6 MB, 24 MB goal"). */
let natsLiveHeapMb = 0;
const nats = await startNats({
  env: { GODEBUG: 'gctrace=1' },
  onStderrLine: (line) => {
    const gc = /\d+->\d+->(\d+) MB, \d+ MB goal/.exec(line);
    if (gc) natsLiveHeapMb = Number(gc[1]);
  },
});
const observer = await connect({ servers: nats.url, name: 'soak observer' });
const jsm = await jetstreamManager(observer);
async function natsFigures(): Promise<NatsFigures> {
  let consumers = 0;
  for (const info of await jsm.streams.list().next()) consumers += info.state.consumer_count;
  return { rssMb: round(processStat(nats.pid!).rssMb), liveHeapMb: natsLiveHeapMb, consumers };
}
const origin = await startRelay('origin', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'origin-1' });
const edge = await startRelay('edge', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'edge-1', RELAY_CLUSTER_EDGE_CAPACITY: '100000' });
const replay = startReplay(
  FIXTURE_OBS_LIKE,
  `rtmp://127.0.0.1:${origin.rtmpPort}/live`,
  streams.map((s) => s.key),
);
// Ctrl-C or a kill ends the run without leaving nats-server or the relays behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    origin.child.kill('SIGKILL');
    edge.child.kill('SIGKILL');
    void replay
      .stop()
      .finally(() => nats.cleanup())
      .finally(() => process.exit(130));
  });
}
const wsUrl = (i: number) => `ws://127.0.0.1:${edge.httpPort}/ws/${streams[i % streamCount]!.name}?routed=1`;
const steady: WsClient[] = [];
const churn = { opened: 0, refused: 0, aborted: 0 };
const samples: Sample[] = [];
let stopping = false;
try {
  for (let i = 0; i < viewerCount; i++) steady.push(await openViewer(wsUrl(i), 'good'));
  await waitFor('every steady viewer to get frames', () => steady.every((v) => v.checker.counts.frames > 30), 60_000, 200);
  for (const v of steady) v.maxGapMs = 0; // start-up is not the soak
  const lostAtStart = steady.map((v) => v.checker.counts.lost);
  const churner = (async () => {
    while (!stopping) {
      const started = Date.now();
      for (let k = 0; k < churnPerSecond; k++) {
        const abort = Math.random() < 0.1;
        churn.opened++;
        if (abort) churn.aborted++;
        void churnOnce(wsUrl(churn.opened), 200 + Math.random() * 4800, abort).then((r) => void (r === 'refused' && churn.refused++));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
  })();
  const t0 = Date.now();
  process.stderr.write(`soak: ${streamCount} streams, ${viewerCount} steady viewers, ${churnPerSecond} churn viewers/s, ${minutes} min\n`);
  while (Date.now() - t0 < minutes * 60_000) {
    const s: Sample = { t: Date.now() - t0, origin: await figures(origin), edge: await figures(edge), nats: await natsFigures() };
    samples.push(s);
    if (samples.length % 6 === 1)
      process.stderr.write(
        `  ${round(s.t / 60_000)} min: edge ${s.edge.rssMb} MB rss, ${s.edge.heapMb} MB heap, ${s.edge.fds} fds; origin ${s.origin.rssMb} MB, ${s.origin.fds} fds; nats ${s.nats.rssMb} MB rss, ${s.nats.liveHeapMb} MB live heap, ${s.nats.consumers} consumers; churn ${churn.opened}\n`,
      );
    if (origin.child.exitCode !== null || edge.child.exitCode !== null) throw new Error('a relay process exited');
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
  stopping = true;
  await churner;
  await new Promise((r) => setTimeout(r, 8000)); // the last churn viewers leave
  const settled: Sample = { t: Date.now() - t0, origin: await figures(origin), edge: await figures(edge), nats: await natsFigures() };
  const window = Math.min(30, Math.max(1, Math.floor(samples.length / 3)));
  const avg = (list: Sample[], pick: (s: Sample) => number) => round(list.reduce((a, s) => a + pick(s), 0) / list.length);
  const rows: { what: string; pick: (s: Sample) => number }[] = [
    { what: 'edge RSS (MB)', pick: (s) => s.edge.rssMb },
    { what: 'edge heap (MB)', pick: (s) => s.edge.heapMb },
    { what: 'edge open fds', pick: (s) => s.edge.fds },
    { what: 'origin RSS (MB)', pick: (s) => s.origin.rssMb },
    { what: 'origin heap (MB)', pick: (s) => s.origin.heapMb },
    { what: 'origin open fds', pick: (s) => s.origin.fds },
    { what: 'nats-server RSS (MB)', pick: (s) => s.nats.rssMb },
    { what: 'nats-server Go heap live (MB)', pick: (s) => s.nats.liveHeapMb },
    { what: 'JetStream consumers', pick: (s) => s.nats.consumers },
  ];
  const table = rows.map((r) => ({
    what: r.what,
    first: avg(samples.slice(0, window), r.pick),
    last: avg(samples.slice(-window), r.pick),
    perHour: perHour(samples.slice(window).map((s) => ({ t: s.t, y: r.pick(s) }))),
    settled: r.pick(settled),
  }));
  const frames = steady.reduce((a, v) => a + v.checker.counts.frames, 0);
  const lost = steady.reduce((a, v, i) => a + v.checker.counts.lost - lostAtStart[i]!, 0);
  const result = {
    at: new Date().toISOString(),
    minutes,
    streams: streamCount,
    steadyViewers: viewerCount,
    churnPerSecond,
    churn: { ...churn, perMinute: round(churn.opened / minutes) },
    steady: { frames, lost, closedByServer: steady.filter((v) => v.closedByServer).length, longestWaitMs: round(Math.max(...steady.map((v) => v.maxGapMs))) },
    table,
    samples: samples.length,
  };
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/soak.json', JSON.stringify({ ...result, series: samples }, null, 1));
  const md = [
    `Soak of ${minutes} min (${result.at}): ${streamCount} streams, ${viewerCount} steady viewers, ${churn.opened} churn viewers (${churnPerSecond}/s, ${churn.aborted} abandoned mid-handshake, ${churn.refused} refused).`,
    `Steady viewers: ${frames} frames, ${lost} lost, ${result.steady.closedByServer} closed by the server, longest wait for a frame ${result.steady.longestWaitMs} ms.`,
    '',
    `| figure | first ${round((window * SAMPLE_MS) / 60_000)} min | last ${round((window * SAMPLE_MS) / 60_000)} min | trend per hour | 8 s after the load |`,
    '|---|---|---|---|---|',
    ...table.map((r) => `| ${r.what} | ${r.first} | ${r.last} | ${r.perHour >= 0 ? '+' : ''}${r.perHour} | ${r.settled} |`),
  ].join('\n');
  writeFileSync('bench-results/soak.md', md + '\n');
  process.stdout.write(md + '\n');
} finally {
  stopping = true;
  for (const v of steady) v.close();
  await replay.stop();
  await edge.stop();
  await origin.stop();
  await observer.close();
  await nats.cleanup();
}
