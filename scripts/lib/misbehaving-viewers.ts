/**
 * Viewers that misbehave, against a real origin and edge (processes, their own
 * nats-server), while good viewers watch the same stream: a phase of viewers that
 * never read, one of readers throttled below the stream's rate, and bursts of
 * thousands of connects and disconnects. Per phase: the edge's memory and open
 * files (start, peak, end), its CPU, what the good viewers lost and their longest
 * wait for a frame, and how the edge dealt with the bad ones (closed as too slow).
 */
import { startNats } from '../../test/helpers/nats.ts';
import { FIXTURE_OBS_LIKE } from '../../test/helpers/flv-file.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { startPublisher } from '../../test/helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../../test/helpers/relay-process.ts';
import { processStat, round } from './figures.ts';
import { ONE_ADDRESS_LOAD } from './one-address.ts';
import { churnOnce, openViewer, type WsClient } from './ws-clients.ts';

export interface AbuseOptions {
  good: number;
  stalled: number;
  throttled: number;
  /** Bytes per second a throttled reader takes. */
  throttledBytesPerSecond: number;
  /** Churn: bursts of this many connects, each viewer leaving after 0-2 s (a tenth mid-handshake). */
  churnBurst: number;
  churnBursts: number;
  phaseSeconds: number;
  /** Edge settings for the run (env), e.g. a shorter viewerMaxLagMs. */
  edgeEnv?: Record<string, string>;
  /** The FLV file published in a loop (default: the OBS-like fixture, about 2.7 Mbit/s). */
  file?: string;
}

export interface PhaseRow {
  phase: string;
  edgeRssMb: { start: number; peak: number; end: number };
  edgeHeapMb: { start: number; peak: number; end: number };
  edgeFds: { start: number; peak: number; end: number };
  edgeCpuPercent: number;
  goodLost: number;
  goodLongestWaitMs: number;
  badClosedByServer: number;
  badOpen: number;
  viewersDisconnectedSlow: number;
  viewersSkipped: number;
}

async function metrics(edge: RelayProcess) {
  const text = await (await fetch(`${edge.http}/metrics`)).text();
  const m = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
  return {
    rssMb: m('process_resident_memory_bytes') / 2 ** 20,
    heapMb: m('nodejs_heap_size_used_bytes') / 2 ** 20,
    fds: m('process_open_fds'),
    slow: m('relay_edge_viewers_disconnected_slow_total'),
    skipped: m('relay_edge_viewers_skipped_total'),
  };
}

export async function abuseRun(o: AbuseOptions, log: (line: string) => void = () => {}): Promise<PhaseRow[]> {
  const key = 'abuse-stream-key-0123456789';
  const env = { RELAY_STREAMS: JSON.stringify([{ name: 'cam', key }]), RELAY_LOG_LEVEL: 'warn', ...ONE_ADDRESS_LOAD };
  const nats = await startNats();
  const origin = await startRelay('origin', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'origin-1' });
  const edge = await startRelay('edge', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'edge-1', RELAY_CLUSTER_EDGE_CAPACITY: '1000000', ...o.edgeEnv });
  const publisher = startPublisher({ url: origin.rtmpUrl(key), file: o.file ?? FIXTURE_OBS_LIKE });
  const url = `ws://127.0.0.1:${edge.httpPort}/ws/cam?routed=1`;
  const good: WsClient[] = [];
  let bad: WsClient[] = [];
  const rows: PhaseRow[] = [];
  try {
    for (let i = 0; i < o.good; i++) good.push(await openViewer(url, 'good'));
    await waitFor('good viewers to get frames', () => good.every((v) => v.checker.counts.frames > 30), 30_000, 200);

    const phase = async (name: string, load: () => Promise<void>) => {
      for (const v of good) v.maxGapMs = 0;
      const lost0 = good.reduce((a, v) => a + v.checker.counts.lost, 0);
      const m0 = await metrics(edge);
      const cpu0 = processStat(edge.child.pid!).cpu;
      const t0 = Date.now();
      const peak = { rssMb: m0.rssMb, heapMb: m0.heapMb, fds: m0.fds };
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const m = await metrics(edge);
          peak.rssMb = Math.max(peak.rssMb, m.rssMb);
          peak.heapMb = Math.max(peak.heapMb, m.heapMb);
          peak.fds = Math.max(peak.fds, m.fds);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      await load();
      const left = o.phaseSeconds * 1000 - (Date.now() - t0);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      sampling = false;
      await sampler;
      const m1 = await metrics(edge);
      const row: PhaseRow = {
        phase: name,
        edgeRssMb: { start: round(m0.rssMb), peak: round(peak.rssMb), end: round(m1.rssMb) },
        edgeHeapMb: { start: round(m0.heapMb), peak: round(peak.heapMb), end: round(m1.heapMb) },
        edgeFds: { start: m0.fds, peak: peak.fds, end: m1.fds },
        edgeCpuPercent: round(((processStat(edge.child.pid!).cpu - cpu0) / ((Date.now() - t0) / 1000)) * 100),
        goodLost: good.reduce((a, v) => a + v.checker.counts.lost, 0) - lost0,
        goodLongestWaitMs: round(Math.max(...good.map((v) => v.maxGapMs))),
        badClosedByServer: bad.filter((v) => v.closedByServer).length,
        badOpen: bad.filter((v) => !v.closedByServer).length,
        viewersDisconnectedSlow: m1.slow - m0.slow,
        viewersSkipped: m1.skipped - m0.skipped,
      };
      rows.push(row);
      log(
        `${name}: edge RSS ${row.edgeRssMb.start} -> ${row.edgeRssMb.peak} -> ${row.edgeRssMb.end} MB, heap peak ${row.edgeHeapMb.peak} MB, fds peak ${row.edgeFds.peak}, good lost ${row.goodLost}, longest wait ${row.goodLongestWaitMs} ms, bad closed ${row.badClosedByServer}/${bad.length}`,
      );
    };

    await phase('baseline', async () => {});
    await phase(`${o.stalled} viewers that never read`, async () => {
      bad = [];
      for (let i = 0; i < o.stalled; i++) bad.push(await openViewer(url, 'stalled'));
    });
    for (const v of bad) v.close();
    await phase(`${o.throttled} readers at ${round((o.throttledBytesPerSecond * 8) / 1e6, 2)} Mbit/s`, async () => {
      bad = [];
      for (let i = 0; i < o.throttled; i++) bad.push(await openViewer(url, 'throttled', { bytesPerSecond: o.throttledBytesPerSecond }));
    });
    for (const v of bad) v.close();
    bad = [];
    await phase(`${o.churnBurst * o.churnBursts} connects and disconnects in bursts of ${o.churnBurst}`, async () => {
      for (let b = 0; b < o.churnBursts; b++) {
        await Promise.all(Array.from({ length: o.churnBurst }, (_, i) => churnOnce(url, Math.random() * 2000, i % 10 === 0)));
      }
    });
    await phase('settled', async () => {});
    return rows;
  } finally {
    for (const v of [...good, ...bad]) v.close();
    await publisher.stop();
    await edge.stop();
    await origin.stop();
    await nats.cleanup();
  }
}
