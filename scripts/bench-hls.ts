/**
 * LL-HLS, measured (issue #20), in one run:
 * 1. Viewer experience: the watch page with hls.js in low-latency mode (headless
 *    Chromium), time to first frame over several page loads and glass-to-glass
 *    (ingest -> displayed, from EXT-X-PROGRAM-DATE-TIME) for 15 s.
 * 2. Delivery per core: HLS clients of one OBS-like 720p stream at 2.5 Mbit/s, in
 *    load-generator processes (their CPU reported apart), in steps: the relay's edge
 *    process to LL-HLS clients doing blocking reloads (as hls.js does), and to
 *    classic HLS clients; beside it, nginx serving the HLS files nginx-rtmp makes of
 *    the same clip to classic clients (it has no LL-HLS). Gbit/s per core is bytes
 *    the clients received over the server process's CPU time.
 *
 *   node --import tsx scripts/bench-hls.ts [--steps 50,100,200] [--seconds 10] [--loaders 2] [--loads 6] [--profile]
 *
 * Writes bench-results/hls.json and hls.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { launchChromium } from '../test/helpers/browser.ts';
import { startNats } from '../test/helpers/nats.ts';
import { freePort, waitFor } from '../test/helpers/ports.ts';
import { startPublisher } from '../test/helpers/publisher.ts';
import { startRelay } from '../test/helpers/relay-process.ts';
import { machinePercent, machineTicks, processStat, quantile, round } from './lib/figures.ts';
import { ONE_ADDRESS_LOAD } from './lib/one-address.ts';
import { startNginxHls } from './lib/peer-servers.ts';
import { makeClip } from './lib/relay-latency.ts';
import { reportingChild } from './lib/reporting-child.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '50,100,200' },
    seconds: { type: 'string', default: '10' },
    loaders: { type: 'string', default: '2' },
    loads: { type: 'string', default: '6' },
    profile: { type: 'boolean', default: false },
  },
});
const steps = values.steps.split(',').map(Number);
const seconds = Number(values.seconds);
const loaders = Number(values.loaders);
const loads = Number(values.loads);
const out = new URL('../bench-results/', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KEY = 'bench-hls-key-0123456789';

const clip = makeClip();
const nats = await startNats();
const env = (id: string) => ({
  NATS_URL: nats.url,
  RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]),
  RELAY_CLUSTER_NODE_ID: id,
  RELAY_LOG_LEVEL: 'warn',
  RELAY_CLUSTER_EDGE_CAPACITY: '1000000',
  ...ONE_ADDRESS_LOAD,
});
const origin = await startRelay('origin', env('origin-1'));
// --profile: the edge writes a V8 CPU profile (bench-results/profiles/) when it stops.
const edge = await startRelay('edge', env('edge-1'), values.profile ? ['--cpu-prof', `--cpu-prof-dir=${out}profiles`] : []);
const publisher = startPublisher({ url: origin.rtmpUrl(KEY), file: clip });
await waitFor(
  'the stream live on the edge',
  async () => ((await (await fetch(`${edge.http}/api/streams/cam`)).json().catch(() => ({}))) as { renditions?: unknown[] }).renditions?.length,
  30_000,
  200,
);

// 1. Viewer experience in hls.js.
interface Experience {
  ttffP50Ms: number;
  ttffMaxMs: number;
  loads: number;
  g2gP50Ms: number;
  g2gP95Ms: number;
  samples: number;
}
async function experience(): Promise<Experience> {
  const chromium = await launchChromium();
  try {
    const page = await chromium.browser.newPage();
    type P = { ttffMs?: number; protocol?: string; glassToGlassMs: number[] };
    const player = () => page.evaluate(() => (window as unknown as { relayPlayer: P }).relayPlayer);
    const ttff: number[] = [];
    for (let i = 0; i < loads; i++) {
      await page.goto(`${edge.http}/watch/cam?protocol=hls`);
      ttff.push(await waitFor('the first frame', async () => (await player()).ttffMs, 20_000, 20));
      await sleep(1700); // join at another point of the GOP each time
    }
    await sleep(15_000);
    const g2g = (await player()).glassToGlassMs.slice(-450).sort((a, b) => a - b);
    ttff.sort((a, b) => a - b);
    return {
      ttffP50Ms: round(quantile(ttff, 0.5)),
      ttffMaxMs: round(ttff.at(-1)!),
      loads,
      g2gP50Ms: round(quantile(g2g, 0.5)),
      g2gP95Ms: round(quantile(g2g, 0.95)),
      samples: g2g.length,
    };
  } finally {
    await chromium.close();
  }
}
const viewer = await experience();
process.stderr.write(`# hls.js: ${JSON.stringify(viewer)}\n`);

// 2. Delivery per core.
interface LoadReport {
  clients: number;
  playlists: number;
  media: number;
  bytes: number;
  errors: number;
  minWindowBytes: number;
  cpuSeconds: number;
}
interface Step {
  clients: number;
  serverCpuPercent: number;
  serverRssMb: number;
  deliveredGbps: number;
  gbpsPerCore: number;
  requestsPerSecond: number;
  /** Clients that received less than 80% of the stream's bytes in the window. */
  behind: boolean;
  errors: number;
  loadCpuPercent: number;
  machineCpuPercent: number;
}
interface Target {
  name: string;
  clients: 'll' | 'classic';
  rows: Step[];
  memoryKbPerClient?: number;
}

const clipBitsPerSecond = 2_650_000; // the clip: 2.5 Mbit/s video + 128 kbit/s audio, in FLV

async function deliver(name: string, kind: 'll' | 'classic', pid: number, url: string): Promise<Target> {
  const load = Array.from({ length: loaders }, () => reportingChild<LoadReport>('./hls-load.ts', [kind, url]));
  const rows: Step[] = [];
  const sum = () =>
    load.reduce(
      (a, l) => {
        const r = l.report!;
        return {
          clients: a.clients + r.clients,
          requests: a.requests + r.playlists + r.media,
          bytes: a.bytes + r.bytes,
          errors: a.errors + r.errors,
          cpu: a.cpu + r.cpuSeconds,
          minWindowBytes: Math.min(a.minWindowBytes, r.clients > 0 ? r.minWindowBytes : Infinity),
        };
      },
      { clients: 0, requests: 0, bytes: 0, errors: 0, cpu: 0, minWindowBytes: Infinity },
    );
  let clients = 0;
  let rss1 = 0;
  try {
    await waitFor('the load generators to report', () => load.every((l) => l.report), 20_000, 100);
    for (const target of [1, ...steps]) {
      const add = target - clients;
      load.forEach((l, i) => {
        const n = Math.floor(add / load.length) + (i < add % load.length ? 1 : 0);
        if (n > 0) l.send({ add: n });
      });
      clients = target;
      await waitFor(`${target} clients`, () => sum().clients >= target, 20_000, 100);
      await sleep(4000); // settle: every client past its first playlist and segment
      load.forEach((l) => l.send({ mark: true }));
      await Promise.all(load.map((l) => l.next()));
      const [s0, p0, m0, t0] = [sum(), processStat(pid), machineTicks(), performance.now()];
      await sleep(seconds * 1000);
      await Promise.all(load.map((l) => l.next()));
      const [s1, p1, m1] = [sum(), processStat(pid), machineTicks()];
      const dt = (performance.now() - t0) / 1000;
      if (target === 1) {
        rss1 = p1.rssMb;
        if (s1.bytes === s0.bytes) throw new Error(`${name}: the first client received nothing`);
        continue;
      }
      const cpu = (p1.cpu - p0.cpu) / dt;
      const gbps = ((s1.bytes - s0.bytes) * 8) / dt / 1e9;
      const row: Step = {
        clients: target,
        serverCpuPercent: round(cpu * 100),
        serverRssMb: round(p1.rssMb),
        deliveredGbps: round(gbps, 3),
        gbpsPerCore: round(gbps / cpu, 2),
        requestsPerSecond: Math.round((s1.requests - s0.requests) / dt),
        behind: s1.minWindowBytes < (clipBitsPerSecond / 8) * dt * 0.8,
        errors: s1.errors - s0.errors,
        loadCpuPercent: round(((s1.cpu - s0.cpu) / dt) * 100),
        machineCpuPercent: machinePercent(m0, m1),
      };
      rows.push(row);
      process.stderr.write(`# ${name}, ${target} clients: ${JSON.stringify(row)}\n`);
      if (row.machineCpuPercent >= 95) break;
    }
  } finally {
    load.forEach((l) => l.stop());
  }
  const last = rows.at(-1);
  return { name, clients: kind, rows, ...(last && { memoryKbPerClient: round(((last.serverRssMb - rss1) * 1024) / (last.clients - 1), 1) }) };
}

const targets: Target[] = [];
const edgeMedia = `${edge.http}/hls/cam/source/index.m3u8`;
targets.push(await deliver('this relay: edge process, LL-HLS clients (blocking reloads, parts)', 'll', edge.child.pid!, edgeMedia));
targets.push(await deliver('this relay: edge process, classic HLS clients (segments)', 'classic', edge.child.pid!, edgeMedia));
await publisher.stop();
await edge.stop();
await origin.stop();
await nats.cleanup();

const nginx = await startNginxHls('cam');
const nginxPublisher = startPublisher({ url: nginx.publishUrl, file: clip });
try {
  await waitFor(
    'nginx-rtmp to list three segments',
    async () => ((await (await fetch(nginx.playUrl)).text().catch(() => '')).match(/#EXTINF/g) ?? []).length >= 3,
    30_000,
    250,
  );
  targets.push(await deliver(nginx.name + ', classic HLS clients', 'classic', nginx.pid, nginx.playUrl));
  // The same files from node:http alone: what any HLS server written for Node starts from.
  const port = await freePort();
  const floor = spawn(process.execPath, ['--import', 'tsx', new URL('./lib/node-static-hls.ts', import.meta.url).pathname, nginx.folder, String(port)], {
    stdio: 'inherit',
  });
  try {
    const url = `http://127.0.0.1:${port}/${new URL(nginx.playUrl).pathname.split('/').at(-1)}`;
    await waitFor(
      'node:http to serve',
      () =>
        fetch(url).then(
          (r) => r.ok,
          () => false,
        ),
      15_000,
      100,
    );
    targets.push(await deliver('node:http alone serving the same files from memory (no framework), classic HLS clients', 'classic', floor.pid!, url));
  } finally {
    floor.kill('SIGKILL');
  }
} finally {
  await nginxPublisher.stop();
  await nginx.stop();
}

// Ratios at each client count every target reached.
const ratioAt = (a: Target, b: Target) =>
  a.rows.flatMap((ra) => {
    const rb = b.rows.find((r) => r.clients === ra.clients);
    return rb ? [{ clients: ra.clients, ratio: round(ra.gbpsPerCore / rb.gbpsPerCore, 2) }] : [];
  });
const [ll, classic, peer, nodeFloor] = targets as [Target, Target, Target, Target];
const result = {
  at: new Date().toISOString(),
  clipKbps: clipBitsPerSecond / 1000,
  seconds,
  viewer,
  targets,
  ratios: {
    llVsNginx: ratioAt(ll, peer),
    classicVsNginx: ratioAt(classic, peer),
    nodeFloorVsNginx: ratioAt(nodeFloor, peer),
    classicVsNodeFloor: ratioAt(classic, nodeFloor),
  },
};
const cmd = `node --import tsx scripts/bench-hls.ts --steps ${values.steps} --seconds ${seconds} --loaders ${loaders} --loads ${loads}`;
const md = [
  `LL-HLS, ${result.at} (\`${cmd}\`): one OBS-like 720p stream (H.264 High with B-frames, 2 s GOP, AAC 48 kHz, ${result.clipKbps} kbit/s), origin and edge as separate processes with their own nats-server.`,
  '',
  `**hls.js in Chromium** (the watch page, \`?protocol=hls\`): time to first frame p50 ${viewer.ttffP50Ms} ms, max ${viewer.ttffMaxMs} ms over ${viewer.loads} loads (target <= 1 s); glass-to-glass p50 **${viewer.g2gP50Ms} ms**, p95 **${viewer.g2gP95Ms} ms** over ${viewer.samples} pictures (targets 1.5 s and 2.5 s).`,
  '',
  '| server, clients | clients | server CPU | delivered | Gbit/s per core | requests/s | all clients keep up | server RSS | load generators (apart) | machine |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...targets.flatMap((t) =>
    t.rows.map(
      (r) =>
        `| ${t.name} | ${r.clients} | ${r.serverCpuPercent}% | ${r.deliveredGbps} Gbit/s | ${r.gbpsPerCore} | ${r.requestsPerSecond} | ${r.behind || r.errors ? `no (${r.errors} errors)` : 'yes'} | ${r.serverRssMb} MB | ${r.loadCpuPercent}% | ${r.machineCpuPercent}% |`,
    ),
  ),
  '',
  ...targets.map((t) => `- ${t.name}: memory per client ${t.memoryKbPerClient ?? '?'} KB (RSS slope).`),
  '',
  `Gbit/s per core, relay / nginx: LL-HLS clients ${result.ratios.llVsNginx.map((r) => `${r.ratio}x at ${r.clients}`).join(', ')}; classic clients ${result.ratios.classicVsNginx.map((r) => `${r.ratio}x at ${r.clients}`).join(', ')} (target >= 0.7x). node:http alone / nginx: ${result.ratios.nodeFloorVsNginx.map((r) => `${r.ratio}x at ${r.clients}`).join(', ')}; relay (classic clients) / node:http alone: ${result.ratios.classicVsNodeFloor.map((r) => `${r.ratio}x at ${r.clients}`).join(', ')}.`,
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}hls.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}hls.md`, md);
process.stdout.write(md);
process.exit(0);
