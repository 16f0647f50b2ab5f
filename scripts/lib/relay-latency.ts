/**
 * Relay latency (origin receipt -> edge socket write) at N live streams, and the
 * MSE watch page's time to first frame and glass-to-glass in Chromium. Real parts
 * only: the relay CLI with its own nats-server, ffmpeg publishers (an OBS-like 720p
 * clip sent with -c copy), WebSocket viewers, headless Chromium.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { frameStorage } from '../../server/core/bus/frame-stream.ts';
import type { RelayConfig } from '../../server/core/config/schema.ts';
import { launchChromium } from '../../test/helpers/browser.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { startNats } from '../../test/helpers/nats.ts';
import { startPublisher, type Publisher } from '../../test/helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../../test/helpers/relay-process.ts';
import { watch } from '../../test/helpers/ws-viewer.ts';
import { machinePercent, machineTicks, processStat, quantile, round } from './figures.ts';
import { ONE_ADDRESS_LOAD } from './one-address.ts';

type BusStorage = RelayConfig['bus']['storage'];

export function makeClip(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-clip-'));
  const file = join(dir, 'obs-like-720p.flv');
  process.stderr.write('encoding a 10 s OBS-like 720p clip (High, B-frames, 2 s GOP, AAC 48 kHz)...\n');
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=1280x720:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    '10',
    '-c:v',
    'libx264',
    '-profile:v',
    'high',
    '-preset',
    'veryfast',
    '-bf',
    '2',
    '-g',
    '60',
    '-keyint_min',
    '60',
    '-sc_threshold',
    '0',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    '2500k',
    '-maxrate',
    '2500k',
    '-bufsize',
    '5000k',
    '-c:a',
    'aac',
    '-ar',
    '48000',
    '-ac',
    '2',
    '-b:a',
    '128k',
    '-f',
    'flv',
    file,
  ]);
  return file;
}

/** Cumulative histogram buckets of one metric from a Prometheus text scrape. */
async function scrapeHistogram(relay: RelayProcess, name: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${relay.http}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm')))
    buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return buckets;
}

/** Quantile of the observations between two scrapes, interpolated inside its bucket. */
function histogramQuantile(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => after.get(b)! - (before.get(b) ?? 0));
  const total = counts.at(-1)!;
  const target = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= target) {
      const upper = bounds[i]!;
      if (!Number.isFinite(upper)) return lower;
      const inBucket = counts[i]! - below;
      return lower + (upper - lower) * (inBucket === 0 ? 0 : (target - below) / inBucket);
    }
    lower = bounds[i]!;
    below = counts[i]!;
  }
  return NaN;
}

export interface LatencyRow {
  streams: number;
  fragments: number;
  p50Ms: number;
  p99Ms: number;
  clientP50Ms: number;
  clientP99Ms: number;
  missing: number;
  relayCpuPercent: number;
  natsCpuPercent?: number;
  machineCpuPercent?: number;
  publisher?: 'ffmpeg' | 'replay';
  layout?: 'all' | 'split';
  publishersCpuPercent?: number;
  storage?: 'file' | 'memory';
}

/** All streams' publishers in one process (scripts/lib/rtmp-replay.ts). */
export function startReplay(clip: string, rtmpBase: string, keys: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./rtmp-replay.ts', import.meta.url).pathname, clip, rtmpBase, keys.join(',')], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Relay latency with `n` live streams, each with one WebSocket viewer. Publishers:
 * one ffmpeg (`-re -c copy`) per stream, or `replay`: one process replaying the same
 * clip over RTMP for all streams, which leaves 2 cores to the relay at 100 streams.
 */
export async function latencyRun(
  clip: string,
  n: number,
  seconds: number,
  publisher: 'ffmpeg' | 'replay' = 'ffmpeg',
  layout: 'all' | 'split' = 'all',
  storage: BusStorage = 'auto',
): Promise<LatencyRow> {
  const streams = Array.from({ length: n }, (_, i) => ({ name: `s${i}`, key: `bench-stream-key-${String(i).padStart(4, '0')}-abcdef` }));
  const env = { RELAY_STREAMS: JSON.stringify(streams), RELAY_LOG_LEVEL: 'warn', RELAY_BUS_STORAGE: storage, ...ONE_ADDRESS_LOAD };
  // 'split': an origin process and an edge process on a nats-server of their own, as deployed; 'all': one process with its embedded nats-server.
  const nats = layout === 'split' ? await startNats() : undefined;
  const origin = nats ? await startRelay('origin', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'origin-1' }) : undefined;
  const relay = nats
    ? await startRelay('edge', { ...env, NATS_URL: nats.url, RELAY_CLUSTER_NODE_ID: 'edge-1', RELAY_CLUSTER_EDGE_CAPACITY: '100000' })
    : await startRelay('all', env);
  const ingest = origin ?? relay;
  const relayCpu = () => processStat(relay.child.pid!).cpu + (origin ? processStat(origin.child.pid!).cpu : 0);
  const publishers: Publisher[] = [];
  let replay: ReturnType<typeof startReplay> | undefined;
  const viewers = streams.map((s) => watch(`ws://127.0.0.1:${relay.httpPort}/ws/${s.name}${origin ? '?routed=1' : ''}`));
  const publishersCpu = () =>
    replay ? processStat(replay.pid).cpu : publishers.reduce((a, p) => a + (p.process.exitCode === null ? processStat(p.process.pid!).cpu : 0), 0);
  try {
    if (publisher === 'replay')
      replay = startReplay(
        clip,
        `rtmp://127.0.0.1:${ingest.rtmpPort}/live`,
        streams.map((s) => s.key),
      );
    else for (const s of streams) publishers.push(startPublisher({ url: ingest.rtmpUrl(s.key), file: clip }));
    await waitFor('every stream to reach its viewer', () => viewers.every((v) => v.record.fragments.length > 30), 180_000, 200);
    await new Promise((r) => setTimeout(r, 3000));
    const before = await scrapeHistogram(relay, 'relay_edge_relay_latency_seconds');
    const marks = viewers.map((v) => v.record.fragments.length);
    // The embedded nats-server is the relay's child process.
    const natsPid =
      nats?.pid ??
      Number(
        execFileSync('pgrep', ['-P', String(relay.child.pid), 'nats-server'], { encoding: 'utf8' })
          .trim()
          .split('\n')[0],
      );
    const cpu0 = relayCpu();
    const nats0 = processStat(natsPid).cpu;
    const pub0 = publishersCpu();
    const m0 = machineTicks();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const dt = (Date.now() - t0) / 1000;
    const cpu = (relayCpu() - cpu0) / dt;
    const natsCpu = (processStat(natsPid).cpu - nats0) / dt;
    const pubCpu = (publishersCpu() - pub0) / dt;
    const m1 = machineTicks();
    const after = await scrapeHistogram(relay, 'relay_edge_relay_latency_seconds');
    const client: number[] = [];
    let missing = 0;
    viewers.forEach((v, i) => {
      const window = v.record.fragments.slice(marks[i]);
      for (let j = 1; j < window.length; j++) missing += window[j]!.sequence - window[j - 1]!.sequence - 1;
      for (const f of window) if (f.prftWallMs) client.push(f.at - f.prftWallMs);
    });
    client.sort((a, b) => a - b);
    return {
      streams: n,
      fragments: after.get(Infinity)! - (before.get(Infinity) ?? 0),
      p50Ms: round(histogramQuantile(before, after, 0.5) * 1000, 2),
      p99Ms: round(histogramQuantile(before, after, 0.99) * 1000, 2),
      clientP50Ms: round(quantile(client, 0.5), 1),
      clientP99Ms: round(quantile(client, 0.99), 1),
      missing,
      relayCpuPercent: round(cpu * 100),
      natsCpuPercent: round(natsCpu * 100),
      machineCpuPercent: machinePercent(m0, m1),
      publisher,
      layout,
      publishersCpuPercent: round(pubCpu * 100),
      // What the frame stream was created with: the relay's own nats-server, one replica.
      storage: frameStorage({ storage, replicas: 1 }),
    };
  } finally {
    viewers.forEach((v) => v.close());
    await Promise.all(publishers.map((p) => p.stop()));
    await replay?.stop();
    await relay.stop();
    await origin?.stop();
    await nats?.cleanup();
  }
}

export interface ViewerRow {
  ttffP50Ms: number;
  ttffMaxMs: number;
  loads: number;
  g2gP50Ms: number;
  g2gP95Ms: number;
  g2gSamples: number;
}

export async function browserRun(clip: string): Promise<ViewerRow> {
  const key = 'bench-browser-key-0123456789';
  const relay = await startRelay('all', { RELAY_DEMO_KEY: key, RELAY_LOG_LEVEL: 'warn', ...ONE_ADDRESS_LOAD });
  const publisher = startPublisher({ url: relay.rtmpUrl(key), file: clip });
  const chromium = await launchChromium();
  try {
    const page = await chromium.browser.newPage();
    const ttff: number[] = [];
    const player = () => page.evaluate(() => (window as unknown as { relayPlayer: { ttffMs?: number; glassToGlassMs: number[]; state: string } }).relayPlayer);
    for (let i = 0; i < 8; i++) {
      await page.goto(`${relay.http}/watch/demo`);
      const ms = await waitFor('the first decoded frame', async () => (await player()).ttffMs, 20_000, 20);
      ttff.push(ms);
      await new Promise((r) => setTimeout(r, 2500)); // join at a different point of the GOP each time
    }
    await new Promise((r) => setTimeout(r, 15_000));
    const g2g = [...(await player()).glassToGlassMs].sort((a, b) => a - b);
    ttff.sort((a, b) => a - b);
    return {
      ttffP50Ms: round(quantile(ttff, 0.5)),
      ttffMaxMs: round(ttff.at(-1)!),
      loads: ttff.length,
      g2gP50Ms: round(quantile(g2g, 0.5)),
      g2gP95Ms: round(quantile(g2g, 0.95)),
      g2gSamples: g2g.length,
    };
  } finally {
    await chromium.close();
    await publisher.stop();
    await relay.stop();
  }
}
