/**
 * How many renditions one origin core pushes through JetStream with publish -> edge
 * p99 <= 20 ms: a real nats-server, one origin process (scripts/lib/bus-load.ts)
 * adding renditions in steps, two edge processes consuming them all; frames in the
 * storage given (bus.storage).
 */
import { startNats } from '../../test/helpers/nats.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { machinePercent, machineTicks, processStat, round } from './figures.ts';
import { reportingChild } from './reporting-child.ts';

interface BusReport {
  frames: number;
  failed: number;
  backpressure: number;
  streams: number;
  observations: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  cpuSeconds: number;
}

export interface BusStep {
  renditions: number;
  originCpuPercent: number;
  natsCpuPercent: number;
  edgesCpuPercent: number;
  machineCpuPercent: number;
  framesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  failed: number;
  backpressure: number;
}

export interface BusResult {
  storage: 'file' | 'memory';
  renditionKbps: number;
  steps: BusStep[];
  stoppedBy: string;
  best?: { renditions: number; originCpuPercent: number; renditionsPerOriginCore: number; p99Ms: number };
}

/** The bar: every frame through with p99 publish -> edge <= 20 ms. */
const meetsTarget = (s: BusStep) => s.p99Ms <= 20 && s.failed === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const start = (role: 'origin' | 'edge', natsUrl: string, kbps: number, storage: string) =>
  reportingChild<BusReport>('./bus-load.ts', [role, natsUrl, String(kbps)], { RELAY_BUS_STORAGE: storage });

export async function busScale(steps: number[], seconds: number, kbps = 1000, storage: 'file' | 'memory' = 'memory', edges = 2): Promise<BusResult> {
  const nats = await startNats();
  const origin = start('origin', nats.url, kbps, storage);
  const consumers = Array.from({ length: edges }, () => start('edge', nats.url, kbps, storage));
  const rows: BusStep[] = [];
  let stoppedBy = `the last step (${steps.at(-1)} renditions)`;
  let n = 0;
  try {
    await waitFor('the bus processes to report', () => origin.report && consumers.every((c) => c.report), 30_000, 100);
    for (const target of steps) {
      const names = Array.from({ length: target - n }, (_, i) => `b${n + i}`);
      consumers.forEach((c, i) => c.send({ streams: names.filter((_, j) => j % consumers.length === i) }));
      await waitFor(`${target} consumers`, () => consumers.reduce((a, c) => a + c.report!.streams, 0) >= target, 60_000, 100);
      origin.send({ streams: names });
      n = target;
      await sleep(3000);
      [origin, ...consumers].forEach((p) => p.send({ mark: true }));
      await Promise.all([origin, ...consumers].map((p) => p.next()));
      const o0 = origin.report!;
      const e0 = consumers.map((c) => c.report!);
      const n0 = processStat(nats.pid!);
      const m0 = machineTicks();
      const t0 = performance.now();
      await sleep(seconds * 1000);
      await Promise.all([origin, ...consumers].map((p) => p.next()));
      const dt = (performance.now() - t0) / 1000;
      const o1 = origin.report!;
      const e1 = consumers.map((c) => c.report!);
      const m1 = machineTicks();
      const row: BusStep = {
        renditions: target,
        originCpuPercent: round(((o1.cpuSeconds - o0.cpuSeconds) / dt) * 100),
        natsCpuPercent: round(((processStat(nats.pid!).cpu - n0.cpu) / dt) * 100),
        edgesCpuPercent: round((e1.reduce((a, r, i) => a + r.cpuSeconds - e0[i]!.cpuSeconds, 0) / dt) * 100),
        machineCpuPercent: machinePercent(m0, m1),
        framesPerSecond: Math.round((o1.frames - o0.frames) / dt),
        // The worst edge process's quantiles: every rendition must meet the target.
        p50Ms: round(Math.max(...e1.map((r) => r.p50Ms ?? Infinity)), 2),
        p99Ms: round(Math.max(...e1.map((r) => r.p99Ms ?? Infinity)), 2),
        maxMs: round(Math.max(...e1.map((r) => r.maxMs ?? Infinity)), 1),
        failed: o1.failed + e1.reduce((a, r) => a + r.failed, 0),
        backpressure: o1.backpressure - o0.backpressure,
      };
      const received = e1.reduce((a, r, i) => a + r.frames - e0[i]!.frames, 0);
      rows.push(row);
      process.stderr.write(`${storage} ${target}: ${JSON.stringify({ ...row, receivedPerSecond: Math.round(received / dt) })}\n`);
      if (!meetsTarget(row)) {
        stoppedBy = `p99 over 20 ms or failures at ${target} renditions`;
        break;
      }
      if (row.originCpuPercent >= 95) {
        stoppedBy = `the origin saturated one core at ${target} renditions`;
        break;
      }
      if (row.machineCpuPercent >= 95) {
        stoppedBy = `the machine was full at ${target} renditions (origin, nats-server and edges share 2 cores)`;
        break;
      }
    }
  } finally {
    origin.stop();
    consumers.forEach((c) => c.stop());
    await nats.cleanup();
  }
  const b = rows.filter(meetsTarget).at(-1);
  return {
    storage,
    renditionKbps: kbps,
    steps: rows,
    stoppedBy,
    ...(b && {
      best: {
        renditions: b.renditions,
        originCpuPercent: b.originCpuPercent,
        renditionsPerOriginCore: Math.round(b.renditions / (b.originCpuPercent / 100)),
        p99Ms: b.p99Ms,
      },
    }),
  };
}
