/**
 * Faults, measured for what a viewer sees (issue #8): each scenario runs origins,
 * edges and nats-servers as real processes, one stream (an OBS-like clip, -c copy)
 * and WebSocket viewers, injects one fault, and reports whether the viewers stayed
 * connected, their longest wait for a frame, the video frames they lost (decode-time steps
 * longer than a frame within one init segment), and when playback came back.
 * Writes bench-results/faults.{json,md}. Needs root for the network namespace.
 *
 *   node --import tsx scripts/faults.ts [--only nats-restart,nats-restart-file,cluster-node,netns,edge-kill,origin-kill]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NatsServerProcess } from '../node/nats-server-process.ts';
import { FIXTURE_OBS_LIKE } from '../test/helpers/flv-file.ts';
import { startNatsCluster } from '../test/helpers/nats-cluster.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startRelay, type RelayProcess } from '../test/helpers/relay-process.ts';
import { watch } from '../test/helpers/ws-viewer.ts';
import { round } from './lib/figures.ts';
import { ONE_ADDRESS_LOAD } from './lib/one-address.ts';

const KEY = 'faults-stream-key-0123456789';
const FRAME_TICKS = 3000; // 30 fps at 90 kHz
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = (id: string, natsUrl: string, extra: Record<string, string> = {}) => ({
  NATS_URL: natsUrl,
  RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]),
  RELAY_CLUSTER_NODE_ID: id,
  RELAY_LOG_LEVEL: 'warn',
  ...ONE_ADDRESS_LOAD,
  ...extra,
});

interface Row {
  scenario?: string;
  fault: string;
  viewers: number;
  stayedConnected: number;
  longestWaitMs: number;
  framesLost: number | null;
  playingAgainAfterMs: number;
  note: string;
}

function publish(url: string, launcher: string[] = []): ChildProcess {
  const args = ['-hide_banner', '-v', 'error', '-nostdin', '-re', '-stream_loop', '-1', '-i', FIXTURE_OBS_LIKE, '-c', 'copy', '-f', 'flv', url];
  const [bin, ...rest] = [...launcher, 'ffmpeg', ...args];
  const child = spawn(bin!, rest, { stdio: 'ignore' });
  child.on('error', () => {});
  return child;
}

type Viewer = ReturnType<typeof watch>;
const videoOf = (v: Viewer) => v.record.fragments.filter((f) => f.tracks.some((t) => t.trackId === 1));

/** From `since` (ms epoch), the worst viewer's: longest wait between frames, frames lost (decode-time steps within one init), and when frames flowed again after `faultAt`. */
function measure(viewers: Viewer[], since: number, faultAt: number) {
  let longest = 0;
  let lost = 0;
  let back = 0;
  for (const v of viewers) {
    // Fragments with their index, to tell which init (publication clock) each belongs to.
    const all = v.record.fragments.map((f, i) => ({ f, i })).filter(({ f }) => f.at >= since && f.tracks.some((t) => t.trackId === 1));
    const initOf = (i: number) => v.record.initAt.filter((at) => at <= i).length;
    const frames = all.map(({ f }) => f);
    let lostHere = 0;
    for (let k = 1; k < all.length; k++) {
      const [a, b] = [all[k - 1]!, all[k]!];
      longest = Math.max(longest, b.f.at - a.f.at);
      // Decode times step one frame at a time within one publication (a new init restarts
      // them). Ingest times would not do: back-pressure delays frames without losing any.
      if (initOf(a.i) !== initOf(b.i)) continue;
      const step = b.f.tracks.find((t) => t.trackId === 1)!.baseDecodeTime - a.f.tracks.find((t) => t.trackId === 1)!.baseDecodeTime;
      if (step > FRAME_TICKS * 1.5) lostHere += Math.round(step / FRAME_TICKS) - 1;
    }
    lost = Math.max(lost, lostHere); // per viewer: the one that lost most
    // Playing again: the first frame after the longest silence that began after the fault.
    let gapEnd = 0;
    let gap = 0;
    for (let i = 1; i < frames.length; i++) {
      if (frames[i - 1]!.at >= faultAt - 1000 && frames[i]!.at - frames[i - 1]!.at > gap) {
        gap = frames[i]!.at - frames[i - 1]!.at;
        gapEnd = frames[i]!.at;
      }
    }
    if (gap > 1000) back = Math.max(back, gapEnd - faultAt); // a pause a viewer notices
  }
  return { longestWaitMs: round(longest), framesLost: lost, playingAgainAfterMs: round(back) };
}

/** What a row says of lost frames. */
function lostText(r: Row): string {
  if (r.framesLost !== null) return String(r.framesLost);
  return r.scenario === 'edge-kill'
    ? 'none missed by design: a reconnected viewer starts at the current keyframe'
    : "a new publication: the publisher's frames from the fault to the takeover";
}

/** A nats-server of the scenario's own, on a temporary store. */
async function ownNats(port = 0, host?: string) {
  const storeDir = mkdtempSync(join(tmpdir(), 'faults-nats-'));
  const nats = new NatsServerProcess({ storeDir, port, host });
  await nats.start();
  return {
    nats,
    storeDir,
    stop: async () => {
      await nats.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** Plays 3 s, injects the fault, waits `settleMs`, and measures what the viewers saw (they are closed after). */
async function observe(viewers: Viewer[], inject: () => Promise<void>, settleMs: number) {
  const since = Date.now();
  await sleep(3000);
  const faultAt = Date.now();
  await inject();
  await sleep(settleMs);
  const m = measure(viewers, since, faultAt);
  const stayedConnected = viewers.filter((v) => !v.record.closed).length;
  viewers.forEach((v) => v.close());
  return { viewers: viewers.length, stayedConnected, ...m };
}

async function viewersOn(edge: RelayProcess, n: number): Promise<Viewer[]> {
  const viewers = Array.from({ length: n }, () => watch(`ws://${new URL(edge.http).host}/ws/cam?routed=1`));
  await waitFor('viewers playing', () => viewers.every((v) => videoOf(v).length > 60), 30_000, 100);
  return viewers;
}

async function natsRestart(storage: 'memory' | 'file'): Promise<Row> {
  const own = await ownNats();
  let nats = own.nats;
  const origin = await startRelay('origin', env('origin-1', nats.url, { RELAY_BUS_STORAGE: storage }));
  const edge = await startRelay('edge', env('edge-1', nats.url, { RELAY_BUS_STORAGE: storage }));
  const publisher = publish(origin.rtmpUrl(KEY));
  try {
    const seen = await observe(
      await viewersOn(edge, 5),
      async () => {
        const port = nats.port;
        await nats.kill();
        await sleep(2000);
        nats = new NatsServerProcess({ storeDir: own.storeDir, port });
        await nats.start();
      },
      15_000,
    );
    return {
      fault: `nats-server killed (-9) and restarted 2 s later, single node, frames in ${storage} storage (bus.storage)`,
      ...seen,
      note: `publisher ${publisher.exitCode === null ? 'stayed connected' : 'was disconnected'}`,
    };
  } finally {
    publisher.kill('SIGKILL');
    await edge.stop();
    await origin.stop();
    await nats.stop();
    await own.stop();
  }
}

async function clusterNode(): Promise<Row> {
  const cluster = await startNatsCluster(3);
  const replicated = { RELAY_BUS_REPLICAS: '3', RELAY_CLUSTER_KV_REPLICAS: '3' };
  const origin = await startRelay('origin', env('origin-1', cluster.url, replicated));
  const edge = await startRelay('edge', env('edge-1', cluster.url, replicated));
  const publisher = publish(origin.rtmpUrl(KEY));
  try {
    // The first URL: where the relay's connections went.
    const seen = await observe(await viewersOn(edge, 5), () => cluster.nodes[0]!.server.kill(), 25_000);
    return {
      fault: 'one node of a 3-node NATS cluster killed (-9), replicas 3',
      ...seen,
      note: `publisher ${publisher.exitCode === null ? 'stayed connected' : 'was disconnected'}`,
    };
  } finally {
    publisher.kill('SIGKILL');
    await edge.stop();
    await origin.stop();
    await cluster.cleanup();
  }
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

async function netnsCut(): Promise<Row> {
  const ns = 'relay-faults';
  try {
    ip('netns', 'del', ns);
  } catch {
    /* not there */
  }
  ip('netns', 'add', ns);
  ip('link', 'add', 'rf-host', 'type', 'veth', 'peer', 'name', 'rf-origin');
  ip('link', 'set', 'rf-origin', 'netns', ns);
  ip('addr', 'add', '10.77.0.1/24', 'dev', 'rf-host');
  ip('link', 'set', 'rf-host', 'up');
  ip('netns', 'exec', ns, 'ip', 'addr', 'add', '10.77.0.2/24', 'dev', 'rf-origin');
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'rf-origin', 'up');
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  const own = await ownNats(0, '10.77.0.1');
  const nats = own.nats;
  const launcher = ['ip', 'netns', 'exec', ns];
  let cutOff: RelayProcess | undefined;
  let other: RelayProcess | undefined;
  let edge: RelayProcess | undefined;
  const publishers: ChildProcess[] = [];
  try {
    cutOff = await startRelay('origin', env('origin-1', nats.url), [], { launcher, host: '10.77.0.2' });
    other = await startRelay('origin', env('origin-2', nats.url));
    edge = await startRelay('edge', env('edge-1', nats.url));
    // The publisher shares the origin's namespace: the cut is between the origin and NATS only.
    const first = publish(cutOff.rtmpUrl(KEY), launcher);
    publishers.push(first);
    let droppedAfter = 0;
    const seen = await observe(
      await viewersOn(edge, 5),
      async () => {
        const cut = Date.now();
        ip('link', 'set', 'rf-host', 'down');
        // The origin stops publishing before its lease could expire and drops its publisher (LEASE_LOST);
        // like OBS, the publisher then reconnects, through the load balancer, to the other origin.
        await waitFor('the cut-off origin to drop its publisher', () => first.exitCode !== null || first.signalCode !== null, 30_000, 100);
        droppedAfter = Date.now() - cut;
        publishers.push(publish(other!.rtmpUrl(KEY)));
        await sleep(20_000);
        ip('link', 'set', 'rf-host', 'up'); // healed: the old origin must not publish over the new one
      },
      5000,
    );
    return {
      fault: 'an origin cut off from NATS (veth down between network namespaces); its publisher reconnects to another origin',
      ...seen,
      framesLost: null,
      note: `the cut-off origin dropped its publisher after ${round(droppedAfter / 1000)} s (lease TTL 10 s); a new publication, so frames from the cut to the takeover are lost`,
    };
  } finally {
    for (const p of publishers) p.kill('SIGKILL');
    await edge?.stop();
    await other?.stop();
    await cutOff?.stop('SIGKILL');
    await own.stop();
    try {
      ip('netns', 'del', ns);
    } catch {
      /* gone */
    }
    try {
      ip('link', 'del', 'rf-host');
    } catch {
      /* gone with the namespace */
    }
  }
}

async function edgeKill(): Promise<Row> {
  const own = await ownNats();
  const nats = own.nats;
  const origin = await startRelay('origin', env('origin-1', nats.url));
  const edge1 = await startRelay('edge', env('edge-1', nats.url));
  const edge2 = await startRelay('edge', env('edge-2', nats.url));
  const publisher = publish(origin.rtmpUrl(KEY));
  const n = 100;
  try {
    const first = await viewersOn(edge1, n);
    const faultAt = Date.now();
    edge1.child.kill('SIGKILL');
    // What the player does: ask another edge for a route that avoids the dead one, and connect there.
    const again = await Promise.all(
      first.map(async () => {
        await waitFor('the close', () => first.every((v) => v.record.closed), 10_000, 20);
        const route = (await (await fetch(`${edge2.http}/api/route/cam?exclude=edge-1`)).json()) as { ws: string };
        const v = watch(route.ws);
        await waitFor('a frame on the new edge', () => videoOf(v).length > 0, 20_000, 20);
        return { v, ms: videoOf(v)[0]!.at - faultAt };
      }),
    );
    const times = again.map((a) => a.ms).sort((a, b) => a - b);
    again.forEach((a) => a.v.close());
    return {
      fault: `an edge killed (-9) under ${n} viewers; players reconnect through another edge's route`,
      viewers: n,
      stayedConnected: 0,
      longestWaitMs: round(times.at(-1)!),
      framesLost: null,
      playingAgainAfterMs: round(times[Math.floor(times.length / 2)]!),
      note: `all ${again.length} playing again; first frame on the new edge after ${round(times[0]!)} ms (fastest), ${round(times[Math.floor(times.length / 2)]!)} ms (median), ${round(times.at(-1)!)} ms (slowest), each starting at the current GOP's keyframe`,
    };
  } finally {
    publisher.kill('SIGKILL');
    await edge2.stop();
    await edge1.stop();
    await origin.stop();
    await own.stop();
  }
}

async function originKill(): Promise<Row> {
  const own = await ownNats();
  const nats = own.nats;
  const origin1 = await startRelay('origin', env('origin-1', nats.url));
  const origin2 = await startRelay('origin', env('origin-2', nats.url));
  const edge = await startRelay('edge', env('edge-1', nats.url));
  const publishers = [publish(origin1.rtmpUrl(KEY))];
  try {
    const seen = await observe(
      await viewersOn(edge, 20),
      async () => {
        origin1.child.kill('SIGKILL');
        publishers.push(publish(origin2.rtmpUrl(KEY))); // OBS reconnecting through the load balancer
      },
      20_000,
    );
    return {
      fault: 'the origin holding the stream killed (-9) under 20 viewers; the publisher reconnects to another origin at once',
      ...seen,
      framesLost: null,
      note: "the other origin takes the stream when the dead one's lease expires (TTL 10 s); a new publication",
    };
  } finally {
    for (const p of publishers) p.kill('SIGKILL');
    await edge.stop();
    await origin2.stop();
    await origin1.stop();
    await own.stop();
  }
}

const scenarios: Record<string, () => Promise<Row>> = {
  'nats-restart': () => natsRestart('memory'),
  'nats-restart-file': () => natsRestart('file'),
  'cluster-node': clusterNode,
  netns: netnsCut,
  'edge-kill': edgeKill,
  'origin-kill': originKill,
};
const { values } = parseArgs({ options: { only: { type: 'string', default: Object.keys(scenarios).join(',') } } });
// A partial run (--only) replaces its scenarios' rows in the last results and keeps the others.
let rows: Row[] = [];
try {
  rows = (JSON.parse(readFileSync('bench-results/faults.json', 'utf8')) as { rows: Row[] }).rows.filter((r) => r.scenario);
} catch {
  // first run
}
for (const name of values.only.split(',')) {
  process.stderr.write(`fault: ${name}\n`);
  const row = { scenario: name, ...(await scenarios[name]!()) };
  process.stderr.write(`  ${JSON.stringify(row)}\n`);
  rows = [...rows.filter((r) => r.scenario !== name), row];
}
rows.sort((a, b) => Object.keys(scenarios).indexOf(a.scenario!) - Object.keys(scenarios).indexOf(b.scenario!));
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/faults.json', JSON.stringify({ at: new Date().toISOString(), rows }, null, 1));
const md = [
  '| fault | viewers stayed connected | longest wait for a frame | video frames lost (per viewer, the worst) | playing again after | notes |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.fault} | ${r.stayedConnected} of ${r.viewers} | ${r.longestWaitMs} ms | ${lostText(r)} | ${r.playingAgainAfterMs ? `${r.playingAgainAfterMs} ms` : 'no pause over 1 s'} | ${r.note} |`,
  ),
].join('\n');
writeFileSync('bench-results/faults.md', md + '\n');
process.stdout.write(md + '\n');
