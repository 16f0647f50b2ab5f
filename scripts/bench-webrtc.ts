/**
 * WebRTC benchmark (issue 5 targets), real processes on loopback:
 *  - capacity, for each WebRTC engine in the same run (mediasoup's C++ workers, werift in
 *    Node): one edge process, one 2 Mbit/s WHIP stream (H.264 without B-frames + Opus,
 *    published by werift from a pre-encoded clip to an origin process), WHEP viewers added
 *    in steps by load-generator processes until packets go missing or the edge saturates
 *    a core. The edge's CPU and memory include its mediasoup workers (child processes).
 *    Figures: viewers per edge core, CPU and memory per viewer. The load generators
 *    check sequence continuity and report their own CPU.
 *  - WHIP ingest, for each engine in the same run: what `--publishers` WHIP publishers cost an
 *    origin (scripts/lib/whip-ingest-cost.ts).
 *  - viewer experience in Chromium over WHEP: time to first frame and glass-to-glass
 *    (origin ingest -> displayed), against the same page over MSE in the same run.
 *
 *   node --import tsx scripts/bench-webrtc.ts [--engines mediasoup,werift|none] [--steps 50,100,200,300,400] [--seconds 10] [--publishers 8|0] [--no-browser]
 *
 * Writes bench-results/webrtc.json and bench-results/webrtc.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startNats } from '../test/helpers/nats.ts';

import { waitFor } from '../test/helpers/ports.ts';
import { startRelay } from '../test/helpers/relay-process.ts';
import { encodeWhipClip, publishWhipClip } from '../test/helpers/whip-publisher.ts';
import { processTreeStat as processStat, round } from './lib/figures.ts';
import { viewerExperience } from './lib/viewer-experience.ts';
import { publisherRateFor, whipIngestCost, type IngestCost, type PublisherRate } from './lib/whip-ingest-cost.ts';
import { ONE_ADDRESS_LOAD } from './lib/one-address.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '50,100,200,300,400,500' },
    seconds: { type: 'string', default: '10' },
    kbps: { type: 'string', default: '2000' },
    loaders: { type: 'string', default: '2' },
    engines: { type: 'string', default: 'mediasoup,werift' },
    /** mediasoup workers on the edge (one per core by default; the load generators share these cores). */
    workers: { type: 'string', default: '1' },
    /** WHIP publishers on one origin, per ingest engine (0: not measured). */
    publishers: { type: 'string', default: '8' },
    'no-browser': { type: 'boolean', default: false },
  },
});
/** `--engines none`: the viewer experience alone. */
const engines = (values.engines === 'none' ? [] : values.engines.split(',')) as ('mediasoup' | 'werift')[];
const steps = values.steps.split(',').map(Number);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoaderReport {
  connected: number;
  failed: number;
  packets: number;
  bytes: number;
  missing: number;
  reordered: number;
  closed: number;
  cpuSeconds: number;
}

/** One load-generator process and its latest report. */
function startLoader(whepUrl: string) {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', new URL('./lib/whep-load.ts', import.meta.url).pathname, whepUrl], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const state = { last: undefined as LoaderReport | undefined, child };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const r = JSON.parse(line) as LoaderReport & { added?: number };
    if (r.added === undefined) state.last = r;
  });
  return {
    ...state,
    get report() {
      return state.last;
    },
    add: (n: number) => child.stdin!.write(JSON.stringify({ add: n }) + '\n'),
    stop: () => child.kill('SIGKILL'),
  };
}

interface Step {
  viewers: number;
  edgeCpuPercent: number;
  edgeSysPercent: number;
  edgeRssMb: number;
  deliveredMbps: number;
  expectedMbps: number;
  missing: number;
  lossPercent: number;
  loaderCpuPercent: number;
  failed: number;
}

async function capacity(clipDir: string, engine: 'mediasoup' | 'werift') {
  const key = 'bench-webrtc-key-0123456789';
  const nats = await startNats();
  const env = (id: string) => ({
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify([{ name: 'cam', key }]),
    RELAY_CLUSTER_NODE_ID: id,
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
    RELAY_CLUSTER_EDGE_CAPACITY: '100000',
  });
  const origin = await startRelay('origin', env('origin-1'));
  const edge = await startRelay('edge', { ...env('edge-1'), RELAY_WEBRTC_ENGINE: engine, RELAY_WEBRTC_WORKERS: values.workers });
  const clip = encodeWhipClip(clipDir, { size: '1280x720', kbps: Number(values.kbps), seconds: 10 });
  const publisher = await publishWhipClip(`${origin.http}/whip/cam`, key, clip);
  const loaders = Array.from({ length: Number(values.loaders) }, () => startLoader(`${edge.http}/whep/cam?routed=1`));
  const rows: Step[] = [];
  let baseRss: number;
  let idle: { viewers: number; edgeCpuPercent: number } | undefined;
  let viewers = 0;
  try {
    await waitFor(
      'the stream live on the edge',
      async () =>
        ((await (await fetch(`${edge.http}/api/streams/cam`)).json().catch(() => ({}))) as { renditions?: { webrtc?: boolean }[] }).renditions?.some(
          (r) => r.webrtc,
        ),
      30_000,
      200,
    );
    baseRss = processStat(edge.child.pid!).rssMb;
    for (const target of steps) {
      const add = target - viewers;
      loaders.forEach((l, i) => l.add(Math.floor(add / loaders.length) + (i < add % loaders.length ? 1 : 0)));
      await waitFor(
        `${target} viewers connected`,
        () => loaders.reduce((n, l) => n + (l.report?.connected ?? 0) + (l.report?.failed ?? 0), 0) >= target,
        120_000,
        250,
      );
      viewers = target;
      await sleep(3000);
      const sum = () =>
        loaders.reduce(
          (a, l) => ({
            packets: a.packets + l.report!.packets,
            bytes: a.bytes + l.report!.bytes,
            missing: a.missing + l.report!.missing,
            cpu: a.cpu + l.report!.cpuSeconds,
            failed: a.failed + l.report!.failed,
          }),
          { packets: 0, bytes: 0, missing: 0, cpu: 0, failed: 0 },
        );
      const s0 = sum();
      const e0 = processStat(edge.child.pid!);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      await sleep(1100); // the loaders' next report covers the window
      const s1 = sum();
      const e1 = processStat(edge.child.pid!);
      const dt = (performance.now() - t0) / 1000;
      const packets = s1.packets - s0.packets;
      const missing = s1.missing - s0.missing;
      const row: Step = {
        viewers: target - s1.failed,
        edgeCpuPercent: round(((e1.cpu - e0.cpu) / dt) * 100),
        edgeSysPercent: round(((e1.sys - e0.sys) / dt) * 100),
        edgeRssMb: round(e1.rssMb),
        deliveredMbps: round(((s1.bytes - s0.bytes) * 8) / dt / 1e6),
        expectedMbps: round(((target - s1.failed) * (Number(values.kbps) + 64)) / 1000),
        missing,
        lossPercent: round((missing / Math.max(1, packets + missing)) * 100, 3),
        loaderCpuPercent: round(((s1.cpu - s0.cpu) / dt) * 100),
        failed: s1.failed,
      };
      rows.push(row);
      process.stderr.write(JSON.stringify(row) + '\n');
      if (row.edgeCpuPercent > 95 || row.lossPercent > 0.5 || row.failed > 0) break;
    }
    // What the connected viewers cost with no media flowing: ICE consent, RTCP, timers.
    await publisher.stop();
    await sleep(3000);
    const i0 = processStat(edge.child.pid!);
    const ti = performance.now();
    await sleep(seconds * 1000);
    idle = { viewers, edgeCpuPercent: round(((processStat(edge.child.pid!).cpu - i0.cpu) / ((performance.now() - ti) / 1000)) * 100) };
    process.stderr.write(`no media, ${viewers} viewers connected: edge CPU ${idle.edgeCpuPercent}%\n`);
  } finally {
    loaders.forEach((l) => l.stop());
    await publisher.stop();
    await edge.stop();
    await origin.stop();
    await nats.cleanup();
  }
  return { engine, baseRssMb: round(baseRss), rows, idle };
}

const clipDir = mkdtempSync(join(tmpdir(), 'bench-webrtc-'));
const viewers = values['no-browser'] ? [] : await viewerExperience(clipDir, Number(values.kbps));
const caps = [];
for (const engine of engines) caps.push(await capacity(clipDir, engine));
const ingest: IngestCost[] = [];
const publisherRates: PublisherRate[] = [];
if (Number(values.publishers) > 0) {
  const clip = encodeWhipClip(clipDir, { size: '1280x720', kbps: Number(values.kbps), seconds: 10 });
  for (const engine of ['mediasoup', 'werift'] as const) {
    ingest.push(await whipIngestCost(engine, Number(values.publishers), clip, seconds));
    process.stderr.write(JSON.stringify(ingest.at(-1)) + '\n');
    if (!values['no-browser']) publisherRates.push(await publisherRateFor(engine));
  }
}
const summaries = caps.map((cap) => {
  const good = cap.rows.filter((r) => r.lossPercent <= 0.1 && r.edgeCpuPercent <= 95 && r.failed === 0);
  const best = good.at(-1);
  const perViewer = best && {
    cpuPercent: round(best.edgeCpuPercent / best.viewers, 3),
    memoryKb: round(((best.edgeRssMb - cap.baseRssMb) * 1024) / best.viewers, 0),
    viewersPerCore: Math.round(best.viewers / (best.edgeCpuPercent / 100)),
  };
  return { cap, best, perViewer };
});
/** The floor at the same viewer count: plain UDP sends of the same packet shape, then with SRTP protection too (scripts/lib/udp-floor.ts). */
function floor(viewers: number, srtp: boolean): { viewers: number; cpuPercent: number; sysPercent: number } {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', new URL('./lib/udp-floor.ts', import.meta.url).pathname, String(viewers), String(seconds), values.kbps],
    { env: { ...process.env, ...(srtp ? { SRTP: '1' } : {}) } },
  );
  return JSON.parse(out.toString()) as { viewers: number; cpuPercent: number; sysPercent: number };
}
const floorAt = summaries.map((x) => x.best?.viewers ?? 0).reduce((a, b) => Math.max(a, b), 0);
const floors = floorAt > 0 ? { udp: floor(floorAt, false), srtp: floor(floorAt, true) } : undefined;
const result = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model, node: process.version },
  streamKbps: Number(values.kbps),
  capacity: summaries.map(({ cap, perViewer }) => ({ ...cap, perViewer })),
  floors,
  ingest,
  publisherRates,
  viewers,
};
writeFileSync(join(out, 'webrtc.json'), JSON.stringify(result, null, 2) + '\n');
const md = [
  ...summaries.flatMap(({ cap, best, perViewer }) => [
    `**${cap.engine}**`,
    '',
    `| WHEP viewers (${values.kbps} kbit/s H.264 + 64 kbit/s Opus) | edge CPU (of it kernel) | edge RSS | delivered | expected | packets missing | load generators' CPU |`,
    '|---|---|---|---|---|---|---|',
    ...cap.rows.map(
      (r) =>
        `| ${r.viewers} | ${r.edgeCpuPercent}% (${r.edgeSysPercent}%) | ${r.edgeRssMb} MB | ${r.deliveredMbps} Mbit/s | ${r.expectedMbps} Mbit/s | ${r.missing} (${r.lossPercent}%) | ${r.loaderCpuPercent}% |`,
    ),
    '',
    perViewer
      ? `${cap.engine}: per viewer at ${best!.viewers} viewers, ${perViewer.cpuPercent}% of a core, ${perViewer.memoryKb} KB; **${perViewer.viewersPerCore} viewers per edge core**.`
      : `${cap.engine}: no step without loss.`,
    ...(cap.idle
      ? ['', `With no media flowing, ${cap.idle.viewers} connected viewers cost the edge ${cap.idle.edgeCpuPercent}% of a core (ICE consent, RTCP).`]
      : []),
    '',
  ]),
  ...(floors
    ? [
        `| at ${floors.udp.viewers} viewers' packets, same run | CPU (of it kernel) | viewers per core |`,
        '|---|---|---|',
        `| Node UDP sends alone (no SRTP, no RTP work), one socket per viewer | ${floors.udp.cpuPercent}% (${floors.udp.sysPercent}%) | ${Math.round(floors.udp.viewers / (floors.udp.cpuPercent / 100))} |`,
        `| the same with SRTP (AES-GCM) on the video packets | ${floors.srtp.cpuPercent}% (${floors.srtp.sysPercent}%) | ${Math.round(floors.srtp.viewers / (floors.srtp.cpuPercent / 100))} |`,
        ...summaries.flatMap(({ cap, best, perViewer }) =>
          best && perViewer
            ? [`| the edge on ${cap.engine}, at ${best.viewers} viewers | ${best.edgeCpuPercent}% (${best.edgeSysPercent}%) | ${perViewer.viewersPerCore} |`]
            : [],
        ),
        '',
      ]
    : []),
  ...(ingest.length
    ? [
        `| WHIP ingest engine | publishers (${values.kbps} kbit/s H.264 + Opus each) | origin CPU (of it kernel) | per publisher | origin RSS | video frames/s received | sent | publishers' CPU (load generator) |`,
        '|---|---|---|---|---|---|---|---|',
        ...ingest.map(
          (r) =>
            `| ${r.engine} | ${r.publishers} | ${r.originCpuPercent}% (${r.originSysPercent}%) | ${round(r.originCpuPercent / r.publishers, 2)}% | ${r.originRssMb} MB | ${r.framesPerSecond} | ${r.expectedFramesPerSecond} | ${r.publishersCpuPercent}% |`,
        ),
        '',
        ...(publisherRates.length
          ? [
              "| Chromium's camera (1280x720) publishing over WHIP to | its own estimate 6 s in | 12 s in | 24 s in | it sends then | picture height |",
              '|---|---|---|---|---|---|',
              ...publisherRates.map((r) => {
                const kbps = (v: number | undefined) => (v === undefined ? 'none' : `${v} kbit/s`);
                return `| ${r.engine} | ${kbps(r.estimateKbps.at6)} | ${kbps(r.estimateKbps.at12)} | ${kbps(r.estimateKbps.at24)} | ${r.sentKbps} kbit/s | ${r.height} |`;
              }),
              '',
            ]
          : []),
      ]
    : []),
  ...(viewers.length
    ? [
        "| Chromium, source | protocol | first picture p50 | worst | WebRTC's own first picture p50 | worst | glass-to-glass p50 | p95 | frames | player's own figure p50 |",
        '|---|---|---|---|---|---|---|---|---|---|',
        ...viewers.map(
          (v) =>
            `| ${v.source} | ${v.protocol === 'webrtc' ? 'WHEP' : 'MSE (WebSocket)'} | ${v.ttffP50Ms} ms | ${v.ttffMaxMs} ms | ${v.rtcTtffP50Ms === undefined ? '' : `${v.rtcTtffP50Ms} ms`} | ${v.rtcTtffMaxMs === undefined ? '' : `${v.rtcTtffMaxMs} ms`} | ${v.g2gP50Ms} ms | ${v.g2gP95Ms} ms | ${v.samples} | ${v.reportP50Ms === undefined ? '' : `${v.reportP50Ms} ms`} |`,
        ),
        '',
        "First picture over WHEP: the player's fast start (the WebSocket's cached keyframe shown while WHEP connects; WebRTC takes over at its first picture). WebRTC's own first picture: what a bare WHEP client waits (the next keyframe, or one asked of the publisher).",
      ]
    : []),
].join('\n');
writeFileSync(join(out, 'webrtc.md'), md + '\n');
process.stdout.write(md + '\n');
