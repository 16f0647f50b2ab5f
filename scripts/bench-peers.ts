/**
 * The benchmark against peers (issue 7), side by side in one run on this machine:
 *   ceiling  loopback TCP throughput (iperf3): the limit row of the fan-out table
 *   fanout   one 2.5 Mbit/s OBS-like stream to ever more players: this relay's edge
 *            (WebSocket fMP4), node-media-server 4 (HTTP-FLV), nginx-rtmp (RTMP)
 *   latency  relay latency, origin receipt -> edge socket write, at 1/20/100 streams
 *   bus      renditions one origin core pushes through JetStream with p99 <= 20 ms,
 *            with frames in file storage and in memory storage (bus.storage)
 *   viewer   Chromium: time to first frame and glass-to-glass, MSE and WHEP
 *
 *   node --import tsx scripts/bench-peers.ts [--parts ceiling,fanout,latency,bus,viewer]
 *     [--steps 100,200,...] [--seconds 10] [--streams 1,20,100] [--bus-steps 50,100,...]
 *     [--bus-storage file,memory] [--latency-storage auto,memory]
 *
 * Needs nginx-light, libnginx-mod-rtmp and iperf3 (apt-get; scripts/bench installs them).
 * Writes bench-results/peers.json and bench-results/peers.md.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { busScale, type BusResult } from './lib/bus-scale.ts';
import { fanout, stepPassed, type FanoutResult, type FanoutTarget } from './lib/fanout.ts';
import { loopbackCeiling, type CeilingRow } from './lib/loopback-ceiling.ts';
import { latencyRun, makeClip, type LatencyRow } from './lib/relay-latency.ts';
import { viewerExperience, type Experience } from './lib/viewer-experience.ts';
import { round } from './lib/figures.ts';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: 'ceiling,fanout,latency,bus,viewer' },
    steps: { type: 'string', default: '100,200,400,600,800,1000,1200,1400,1600,2000,2400,2800' },
    seconds: { type: 'string', default: '10' },
    loaders: { type: 'string', default: '3' },
    streams: { type: 'string', default: '1,20,100' },
    'latency-seconds': { type: 'string', default: '15' },
    /** Latency publishers: one process replaying the clip over RTMP for every stream, or one ffmpeg per stream. */
    publishers: { type: 'string', default: 'replay' },
    /** Latency layout: origin and edge processes on their own nats-server (split), or one all-in-one process. */
    layout: { type: 'string', default: 'split' },
    'bus-steps': { type: 'string', default: '50,100,150,200,250,300,400,500' },
    'bus-kbps': { type: 'string', default: '1000' },
    /** One bus ramp per storage. */
    'bus-storage': { type: 'string', default: 'file,memory' },
    /** One latency ramp per bus.storage: auto (the default configuration) is file on their single nats-server; memory beside it, in the same run. */
    'latency-storage': { type: 'string', default: 'auto,memory' },
    servers: { type: 'string', default: 'relay,nms,nginx' },
    /** Only rewrite peers.md from the last peers.json. */
    'report-only': { type: 'boolean', default: false },
  },
});
const parts = new Set(values.parts.split(','));
/** A comma-separated option whose every item must be one of `allowed`. */
function choices<T extends string>(option: 'bus-storage' | 'latency-storage', allowed: readonly T[]): T[] {
  const items = values[option].split(',');
  const wrong = items.filter((s) => !(allowed as readonly string[]).includes(s));
  if (wrong.length) throw new Error(`--${option}: ${wrong.join(',')} is not one of ${allowed.join(', ')}`);
  return items as T[];
}
const busStorages = choices('bus-storage', ['file', 'memory'] as const);
const latencyStorages = choices('latency-storage', ['auto', 'file', 'memory'] as const);
const numbers = (s: string) => s.split(',').map(Number);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const say = (s: string) => process.stderr.write(`\n== ${s}\n`);

type Result = {
  date: string;
  /** The parts a partial run re-measured. */
  partial?: string;
  clipKbps?: number;
  loaders?: number;
  machine: { cores: number; model?: string; node: string };
  ceiling?: CeilingRow[];
  fanout?: FanoutResult[];
  latency?: LatencyRow[];
  bus?: BusResult[];
  viewer?: (Experience & { source: string })[];
};

if (values['report-only']) {
  const md = markdown(JSON.parse(readFileSync(join(out, 'peers.json'), 'utf8')) as Result);
  writeFileSync(join(out, 'peers.md'), md + '\n');
  process.stdout.write(md + '\n');
  process.exit(0);
}

const clip = makeClip();
// A subset of the parts (--parts) updates them in the last peers.json and keeps the rest.
const previous = parts.size < 5 && existsSync(join(out, 'peers.json')) ? (JSON.parse(readFileSync(join(out, 'peers.json'), 'utf8')) as Result) : {};
const result: Result = {
  ...previous,
  partial: parts.size < 5 ? [...parts].join(', ') : undefined,
  date: new Date().toISOString(),
  clipKbps: Math.round((readFileSync(clip).length * 8) / 10 / 1000),
  loaders: Number(values.loaders),
  machine: { cores: cpus().length, model: cpus()[0]?.model, node: process.version },
};
if (parts.has('ceiling')) {
  say('loopback ceiling (iperf3)');
  result.ceiling = await loopbackCeiling(5);
}
if (parts.has('fanout')) {
  result.fanout = [];
  for (const target of values.servers.split(',') as FanoutTarget[]) {
    say(`fan-out: ${target}`);
    result.fanout.push(await fanout(target, clip, numbers(values.steps), seconds, Number(values.loaders)));
  }
}
if (parts.has('latency')) {
  result.latency = [];
  for (const storage of latencyStorages) {
    for (const n of numbers(values.streams)) {
      say(`relay latency, ${n} live stream(s), bus.storage ${storage}`);
      result.latency.push(
        await latencyRun(clip, n, Number(values['latency-seconds']), values.publishers as 'ffmpeg' | 'replay', values.layout as 'all' | 'split', storage),
      );
      process.stderr.write(JSON.stringify(result.latency.at(-1)) + '\n');
    }
  }
}
if (parts.has('bus')) {
  result.bus = [];
  for (const storage of busStorages) {
    say(`bus scale, ${storage} storage`);
    result.bus.push(await busScale(numbers(values['bus-steps']), seconds, Number(values['bus-kbps']), storage));
  }
}
if (parts.has('viewer')) {
  say('viewer experience (Chromium)');
  result.viewer = await viewerExperience(mkdtempSync(join(tmpdir(), 'bench-peers-')), 2000);
}

writeFileSync(join(out, 'peers.json'), JSON.stringify(result, null, 2) + '\n');
const md = markdown(result);
writeFileSync(join(out, 'peers.md'), md + '\n');
process.stdout.write(md + '\n');

function markdown(result: Result): string {
  const lines: string[] = [
    `Run of ${result.date.slice(0, 10)}${result.partial ? ` (${result.partial} re-measured then; the rest from an earlier run)` : ''}: ${result.machine.cores} cores (${result.machine.model ?? 'unknown CPU'}), Node ${result.machine.node}. Everything on loopback, on the same cores.`,
    '',
  ];
  if (result.fanout || result.ceiling) {
    lines.push(
      `**Fan-out**: one OBS-like stream (720p30 H.264 High with B-frames, AAC 48 kHz; ${result.clipKbps} kbit/s as published), players added in steps by ${result.loaders} load-generator processes that check every frame's continuity. A step passes when no frame is missing and every player gets >= 95% of the frame rate. Figures at the last passing step.`,
      '',
      "| server (protocol) | players, no drop | server CPU | players per core | delivered | Gbit/s per core | CPU-s per GB | memory per player | load generators' CPU | the ramp stopped at |",
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const f of result.fanout ?? []) {
      const b = f.best;
      const step = b && f.steps.find((s) => s.viewers === b.viewers);
      lines.push(
        b && step
          ? `| ${f.server} (${f.protocol}) | ${b.viewers} | ${b.cpuPercent}% | ${b.viewersPerCore} | ${step.deliveredGbps} Gbit/s | ${b.gbpsPerCore} | ${b.cpuSecondsPerGB} | ${b.memoryKbPerViewer} KB | ${step.loadCpuPercent}% | ${f.stoppedBy} |`
          : `| ${f.server} (${f.protocol}) | none | | | | | | | | ${f.stoppedBy} |`,
      );
    }
    for (const c of result.ceiling ?? [])
      lines.push(
        `| limit: loopback TCP, iperf3, ${c.streams} stream${c.streams > 1 ? 's' : ''} | | sender ${c.senderCpuPercent}%, receiver ${c.receiverCpuPercent}% | | ${c.gbps} Gbit/s | | | | | |`,
      );
    const by = (t: FanoutTarget) => result.fanout?.find((f) => f.target === t)?.best;
    const relay = by('relay');
    const nginx = by('nginx');
    const nms = by('nms');
    if (relay && (nginx || nms)) {
      lines.push(
        '',
        '| ratio (this relay / peer), same run | Gbit/s per core | players per core | CPU-s per GB | memory per player |',
        '|---|---|---|---|---|',
      );
      for (const [name, peer] of [
        ['nginx-rtmp', nginx],
        ['node-media-server HTTP-FLV', nms],
      ] as const) {
        if (peer)
          lines.push(
            `| / ${name} | ${round(relay.gbpsPerCore / peer.gbpsPerCore, 2)}x | ${round(relay.viewersPerCore / peer.viewersPerCore, 2)}x | ${round(relay.cpuSecondsPerGB / peer.cpuSecondsPerGB, 2)}x | ${round(relay.memoryKbPerViewer / peer.memoryKbPerViewer, 2)}x |`,
          );
      }
    }
    // The fairest comparison: the same number of players, the largest step every server passed.
    const passed = (f: FanoutResult) => new Set(f.steps.filter(stepPassed).map((st) => st.viewers));
    const common =
      result.fanout && result.fanout.length > 1
        ? Math.max(0, ...[...passed(result.fanout[0]!)].filter((n) => result.fanout!.every((f) => passed(f).has(n))))
        : 0;
    if (common > 0) {
      lines.push(
        '',
        `At the same load, ${common} players (the largest step every server passed):`,
        '',
        '| server | CPU | of it kernel | RSS | delivered |',
        '|---|---|---|---|---|',
      );
      for (const f of result.fanout!) {
        const st = f.steps.find((x) => x.viewers === common)!;
        lines.push(`| ${f.server} (${f.protocol}) | ${st.serverCpuPercent}% | ${st.serverSysPercent}% | ${st.serverRssMb} MB | ${st.deliveredGbps} Gbit/s |`);
      }
    }
    for (const f of result.fanout ?? []) {
      lines.push(
        '',
        `Steps, ${f.server}:`,
        '',
        "| players | server CPU (of it kernel) | RSS | delivered | frames missing | load generators' CPU | machine CPU |",
        '|---|---|---|---|---|---|---|',
      );
      for (const s of f.steps)
        lines.push(
          `| ${s.viewers}${s.failed ? ` (${s.failed} failed)` : ''}${s.slowPlayers ? ' (a player below 95% of the frame rate)' : ''} | ${s.serverCpuPercent}% (${s.serverSysPercent}%) | ${s.serverRssMb} MB | ${s.deliveredGbps} Gbit/s | ${s.lost} | ${s.loadCpuPercent}% | ${s.machineCpuPercent}% |`,
        );
    }
  }
  if (result.latency) {
    lines.push(
      '',
      "**Relay latency**, origin receipt -> edge socket write (the edge's histogram), and to the WebSocket client's read (from each fragment's `prft`); an origin process and an edge process on a nats-server of their own (split), or one `all` process with its embedded nats-server; one viewer per stream, and publishers replaying the OBS-like clip over RTMP in real time (one process for all streams, or one ffmpeg `-re -c copy` each).",
      '',
      '| live streams (720p30 B-frames) | layout | bus storage | p50 | p99 | viewer-side p50 | p99 | frames missing | relay CPU | nats-server CPU | publishers | their CPU | machine CPU |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      // Runs before 2026-11-23 did not record the storage: memory, the default then.
      ...result.latency.map(
        (r) =>
          `| ${r.streams} | ${r.layout ?? 'all'} | ${r.storage ?? 'memory'} | ${r.p50Ms} ms | ${r.p99Ms} ms | ${r.clientP50Ms} ms | ${r.clientP99Ms} ms | ${r.missing} | ${r.relayCpuPercent}% | ${r.natsCpuPercent ?? ''}% | ${r.publisher === 'replay' ? 'one replay process' : 'ffmpeg each'} | ${r.publishersCpuPercent ?? ''}% | ${r.machineCpuPercent ?? ''}% |`,
      ),
    );
  }
  if (result.bus) {
    // Runs before 2026-11-23 measured one ramp, in memory storage.
    const ramps = Array.isArray(result.bus) ? result.bus : [{ ...(result.bus as BusResult), storage: 'memory' as const }];
    lines.push(
      '',
      `**Bus scale**: renditions of ${ramps[0]?.renditionKbps} kbit/s (30 fps video with a 2 s GOP, 46.9 fps AAC) published by one origin process with the origin's FramePublisher, consumed by two edge processes with the edge's StreamFeed; latency from the origin handing a frame over to the edge decoding it, worst edge. One ramp per storage of the frame stream (bus.storage).`,
      '',
      "| storage | renditions | frames/s | origin CPU | nats-server CPU | edges' CPU | machine CPU | p50 | p99 | max |",
      '|---|---|---|---|---|---|---|---|---|---|',
      ...ramps.flatMap((b) =>
        b.steps.map(
          (s) =>
            `| ${b.storage} | ${s.renditions} | ${s.framesPerSecond} | ${s.originCpuPercent}% | ${s.natsCpuPercent}% | ${s.edgesCpuPercent}% | ${s.machineCpuPercent}% | ${s.p50Ms} ms | ${s.p99Ms} ms | ${s.maxMs} ms |`,
        ),
      ),
      '',
      ...ramps.map(
        (b) =>
          `- ${b.storage} storage: ${b.best ? `at ${b.best.renditions} renditions (p99 ${b.best.p99Ms} ms), **${b.best.renditionsPerOriginCore} renditions per origin core**` : 'no step met p99 <= 20 ms'}. The ramp stopped at: ${b.stoppedBy}.`,
      ),
    );
  }
  if (result.viewer) {
    lines.push(
      '',
      '**Viewer experience**, headless Chromium on the watch page.',
      '',
      '| source | protocol | time to first frame p50 | worst | glass-to-glass p50 | p95 | frames |',
      '|---|---|---|---|---|---|---|',
      ...result.viewer.map(
        (v) =>
          `| ${v.source} | ${v.protocol === 'webrtc' ? 'WHEP' : 'MSE (WebSocket)'} | ${v.ttffP50Ms} ms | ${v.ttffMaxMs} ms | ${v.g2gP50Ms} ms | ${v.g2gP95Ms} ms | ${v.samples} |`,
      ),
    );
  }
  return lines.join('\n');
}
