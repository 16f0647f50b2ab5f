/**
 * Fan-out of one live stream to many players, for one server at a time: the relay's
 * edge (WebSocket fMP4, the stream coming over JetStream from an origin process),
 * node-media-server (HTTP-FLV) or nginx-rtmp (RTMP play). The same clip is published
 * with ffmpeg -c copy to each; players are added in steps by load-generator processes
 * (scripts/lib/fanout-load.ts) that check every frame's continuity.
 */
import { startNats } from '../../test/helpers/nats.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { startPublisher } from '../../test/helpers/publisher.ts';
import { startRelay } from '../../test/helpers/relay-process.ts';
import { machinePercent, machineTicks, processStat, round } from './figures.ts';
import { startNginxRtmp, startNodeMediaServer } from './peer-servers.ts';
import { reportingChild } from './reporting-child.ts';
import { ONE_ADDRESS_LOAD } from './one-address.ts';

export type FanoutTarget = 'relay' | 'nms' | 'nginx';

export interface FanoutStep {
  viewers: number;
  serverCpuPercent: number;
  serverSysPercent: number;
  serverRssMb: number;
  deliveredGbps: number;
  /** Frames missing from what players received (continuity breaks), and players short of 95% of the frame rate. */
  lost: number;
  gaps: number;
  slowPlayers: number;
  failed: number;
  closed: number;
  loadCpuPercent: number;
  /** The whole machine's CPU use, of 100% per core. */
  machineCpuPercent: number;
  /** Bytes delivered and server CPU-seconds in the window (for CPU-seconds per GB). */
  bytes: number;
  serverCpuSeconds: number;
}

export interface FanoutResult {
  target: FanoutTarget;
  server: string;
  protocol: string;
  baselineRssMb: number;
  steps: FanoutStep[];
  /** Why the ramp stopped. */
  stoppedBy: string;
  /** The figures at the last step without a drop. */
  best?: { viewers: number; viewersPerCore: number; gbpsPerCore: number; cpuSecondsPerGB: number; memoryKbPerViewer: number; cpuPercent: number };
}

/** A step passes when no frame is missing, no player failed or left, and every player kept >= 95% of the frame rate. */
export const stepPassed = (s: FanoutStep) => s.lost === 0 && s.gaps === 0 && s.slowPlayers === 0 && s.failed === 0 && s.closed === 0;

interface LoadReport {
  connected: number;
  failed: number;
  closed: number;
  bytes: number;
  frames: number;
  gaps: number;
  lost: number;
  errors: number;
  minWindowFrames: number;
  lastError: string;
  cpuSeconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const startLoader = (protocol: string, url: string) => reportingChild<LoadReport>('./fanout-load.ts', [protocol, url]);

interface Setup {
  server: string;
  protocol: 'ws' | 'flv' | 'rtmp';
  pid: number;
  publishUrl: string;
  playUrl: string;
  stop(): Promise<void>;
}

async function setUp(target: FanoutTarget): Promise<Setup> {
  if (target === 'nms') return { ...(await startNodeMediaServer('cam')), server: 'node-media-server 4.4', protocol: 'flv' };
  if (target === 'nginx') return { ...(await startNginxRtmp('cam')), server: 'nginx 1.22 + nginx-rtmp', protocol: 'rtmp' };
  const key = 'bench-fanout-key-0123456789';
  const nats = await startNats();
  const env = (id: string) => ({
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify([{ name: 'cam', key }]),
    RELAY_CLUSTER_NODE_ID: id,
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
    RELAY_CLUSTER_EDGE_CAPACITY: '1000000',
  });
  const origin = await startRelay('origin', env('origin-1'));
  const edge = await startRelay('edge', env('edge-1'));
  return {
    server: 'this relay: edge process',
    protocol: 'ws',
    pid: edge.child.pid!,
    publishUrl: origin.rtmpUrl(key),
    playUrl: `ws://127.0.0.1:${edge.httpPort}/ws/cam?routed=1`,
    async stop() {
      await edge.stop();
      await origin.stop();
      await nats.cleanup();
    },
  };
}

/**
 * Ramps players in `steps` until a player misses a frame or falls below 95% of the
 * frame rate, a connection fails, the server uses 95% of a core, or the machine is
 * full (the load generators share it). Each step: connect, settle 3 s, measure `seconds`.
 */
export async function fanout(target: FanoutTarget, clip: string, steps: number[], seconds: number, loaders = 3, fps = 30): Promise<FanoutResult> {
  const s = await setUp(target);
  const publisher = startPublisher({ url: s.publishUrl, file: clip });
  const load = Array.from({ length: loaders }, () => startLoader(s.protocol, s.playUrl));
  const rows: FanoutStep[] = [];
  let stoppedBy = `the last step (${steps.at(-1)} players)`;
  let baselineRssMb = 0;
  let viewers = 0;
  const sum = () =>
    load.reduce(
      (a, l) => {
        const r = l.report!;
        return {
          connected: a.connected + r.connected,
          failed: a.failed + r.failed,
          closed: a.closed + r.closed,
          bytes: a.bytes + r.bytes,
          gaps: a.gaps + r.gaps,
          lost: a.lost + r.lost,
          cpu: a.cpu + r.cpuSeconds,
          minWindowFrames: Math.min(a.minWindowFrames, r.connected > 0 ? r.minWindowFrames : Infinity),
        };
      },
      { connected: 0, failed: 0, closed: 0, bytes: 0, gaps: 0, lost: 0, cpu: 0, minWindowFrames: Infinity },
    );
  try {
    await waitFor('the load generators to report', () => load.every((l) => l.report), 20_000, 100);
    // One player first: the stream flows and the server holds its GOP; memory per player counts from here.
    for (const target of [1, ...steps]) {
      const add = target - viewers;
      load.forEach((l, i) => {
        const n = Math.floor(add / load.length) + (i < add % load.length ? 1 : 0);
        if (n > 0) l.send({ add: n });
      });
      try {
        await waitFor(
          `${target} players connected`,
          () => {
            const t = sum();
            return t.connected + t.failed >= target;
          },
          120_000,
          200,
        );
      } catch {
        stoppedBy = `${target} players could not all connect within 120 s (${sum().connected} did)`;
        break;
      }
      viewers = target;
      await sleep(3000);
      load.forEach((l) => l.send({ mark: true }));
      await Promise.all(load.map((l) => l.next()));
      const s0 = sum();
      const p0 = processStat(s.pid);
      const m0 = machineTicks();
      const t0 = performance.now();
      await sleep(seconds * 1000);
      await Promise.all(load.map((l) => l.next()));
      const s1 = sum();
      const p1 = processStat(s.pid);
      const m1 = machineTicks();
      const dt = (performance.now() - t0) / 1000;
      if (target === 1) {
        baselineRssMb = p1.rssMb;
        if (s1.bytes === s0.bytes) throw new Error(`${s.server}: the first player received nothing`);
        continue;
      }
      const slowPlayers = s1.minWindowFrames < fps * seconds * 0.95 ? 1 : 0;
      const row: FanoutStep = {
        viewers: s1.connected - s1.closed,
        serverCpuPercent: round(((p1.cpu - p0.cpu) / dt) * 100),
        serverSysPercent: round(((p1.sys - p0.sys) / dt) * 100),
        serverRssMb: round(p1.rssMb),
        deliveredGbps: round(((s1.bytes - s0.bytes) * 8) / dt / 1e9, 3),
        lost: s1.lost - s0.lost,
        gaps: s1.gaps - s0.gaps,
        slowPlayers,
        failed: s1.failed,
        closed: s1.closed,
        loadCpuPercent: round(((s1.cpu - s0.cpu) / dt) * 100),
        machineCpuPercent: machinePercent(m0, m1),
        bytes: s1.bytes - s0.bytes,
        serverCpuSeconds: p1.cpu - p0.cpu,
      };
      rows.push(row);
      process.stderr.write(`${target}: ${JSON.stringify(row)}\n`);
      if (!stepPassed(row)) {
        stoppedBy = `frames dropped or players failed at ${target} players`;
        break;
      }
      if (row.serverCpuPercent >= 95) {
        stoppedBy = `the server saturated one core at ${target} players`;
        break;
      }
      if (row.machineCpuPercent >= 95) {
        stoppedBy = `the machine was full at ${target} players (server and load generators share 2 cores)`;
        break;
      }
    }
  } finally {
    load.forEach((l) => l.stop());
    await publisher.stop();
    await s.stop();
  }
  const b = rows.filter(stepPassed).at(-1);
  return {
    target,
    server: s.server,
    protocol: { ws: 'WebSocket fMP4', flv: 'HTTP-FLV', rtmp: 'RTMP play' }[s.protocol],
    baselineRssMb: round(baselineRssMb),
    steps: rows,
    stoppedBy,
    ...(b && {
      best: {
        viewers: b.viewers,
        cpuPercent: b.serverCpuPercent,
        viewersPerCore: Math.round(b.viewers / (b.serverCpuPercent / 100)),
        gbpsPerCore: round(b.deliveredGbps / (b.serverCpuPercent / 100), 2),
        cpuSecondsPerGB: round(b.serverCpuSeconds / (b.bytes / 1e9), 3),
        // The slope from the first step: start-up garbage (tsx, a cold heap) makes the one-player RSS a poor base.
        memoryKbPerViewer:
          b === rows[0]
            ? round(((b.serverRssMb - baselineRssMb) * 1024) / (b.viewers - 1), 1)
            : round(((b.serverRssMb - rows[0]!.serverRssMb) * 1024) / (b.viewers - rows[0]!.viewers), 1),
      },
    }),
  };
}
