/**
 * Recording (issue #21): what a recorder costs per 2.5 Mbit/s rendition (target: at most 5% of a core, no
 * re-encoding), against nginx-rtmp's `record all` measured in the same run, and how soon a recording starts after
 * the publish (target: 1 s). The relay runs as two processes on one nats-server: an origin, and a recorder (whose CPU
 * is measured); the publishers replay an OBS-like 720p clip at 2.5 Mbit/s over RTMP from this process (their CPU is
 * reported apart). nginx-rtmp's cost of recording is its CPU with `record all` minus its CPU with the same
 * publishers and no recording, so that both figures are what recording adds.
 *
 *   node --import tsx scripts/bench-recording.ts [--streams 8] [--seconds 20]
 *
 * Writes bench-results/recording.json and recording.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RecordingMeta } from '../server/core/recording/model.ts';
import { startNats } from '../test/helpers/nats.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startRelay } from '../test/helpers/relay-process.ts';
import { processStat, quantile, round } from './lib/figures.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { startNginxRtmp } from './lib/peer-servers.ts';
import { ReplayPublishers } from './lib/replay-publishers.ts';
import { makeObsClip } from './lib/obs-clip.ts';

const { values } = parseArgs({ options: { streams: { type: 'string', default: '8' }, seconds: { type: 'string', default: '20' } } });
const streamCount = Number(values.streams);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bench-recording-'));
const TOKEN = 'bench-recording-admin-token-0123456789';

// The clip: OBS-like 720p30 at about 2.5 Mbit/s, 4 s, looped by the replay.
const { tags, kbps: clipKbps } = makeObsClip(dir);
const keys = Array.from({ length: streamCount }, (_, i) => `bench-recording-key-${String(i).padStart(8, '0')}`);

interface Window {
  cpuPercent: number;
  publishersCpuPercent: number;
  mbitPerSecond: number;
}

/** CPU of `pid` (percent of a core) over `seconds` of steady publishing, after a settling pause. */
async function steady(pid: number, replay: ReplayPublishers): Promise<Window> {
  await new Promise((r) => setTimeout(r, 3000)); // settle: connections, GOPs, JIT
  const [c0, b0, p0, t0] = [processStat(pid).cpu, replay.totals.bytes, process.cpuUsage(), performance.now()];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [c1, b1, p1, t1] = [processStat(pid).cpu, replay.totals.bytes, process.cpuUsage(p0), performance.now()];
  const dt = (t1 - t0) / 1000;
  return {
    cpuPercent: round(((c1 - c0) / dt) * 100, 2),
    publishersCpuPercent: round(((p1.user + p1.system) / 1e6 / dt) * 100, 1),
    mbitPerSecond: round(((b1 - b0) * 8) / dt / 1e6, 1),
  };
}

// ---- The relay: an origin, and a recorder in its own process; then an edge serving the recordings, for rewind.
const streams = keys.map((key, i) => ({ name: `s${i}`, key }));

interface RelayRun {
  storage: 'directory' | 'nats';
  recorder: Window;
  natsServerCpuPercent: number;
  startDelayMs: { min: number; max: number };
  /** By the page's live path: the WebSocket (the edge replays the recording) and LL-HLS (hls.js on the rewind playlist). */
  seekBackTtffMs: Record<string, { p50: number; max: number; samples: number[] }>;
  complete: number;
}

async function relayRun(storage: 'directory' | 'nats'): Promise<RelayRun> {
  const recordings = join(dir, `recordings-${storage}`);
  const nats = await startNats();
  const store = { RELAY_RECORDING_STORAGE: storage, RELAY_RECORDING_DIR: recordings };
  const origin = await startRelay('origin', { NATS_URL: nats.url, RELAY_STREAMS: JSON.stringify(streams), RELAY_LOG_LEVEL: 'warn' });
  const recorder = await startRelay('recorder', {
    NATS_URL: nats.url,
    RELAY_RECORDING_ENABLED: 'true',
    RELAY_ADMIN_TOKEN: TOKEN,
    RELAY_LOG_LEVEL: 'warn',
    ...store,
  });
  const replay = new ReplayPublishers(tags, new URL(`rtmp://127.0.0.1:${origin.rtmpPort}/live`));
  const publishedAt = new Map<string, number>();
  for (const [i, key] of keys.entries()) {
    const p = replay.add(key, 1000);
    void waitFor('published', () => p.publishedAt > 0, 20_000, 5).then(() => publishedAt.set(`s${i}`, Date.now() - (performance.now() - p.publishedAt)));
  }
  const list = async () =>
    (
      (await (await fetch(`${recorder.http}/admin/api/recordings`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
        recordings: RecordingMeta[];
      }
    ).recordings;
  await waitFor(`${streamCount} recordings`, async () => (await list()).length === streamCount, 30_000, 200);
  const n0 = processStat(nats.pid!).cpu;
  const t0 = performance.now();
  const window = await steady(recorder.child.pid!, replay);
  const natsServerCpuPercent = round(((processStat(nats.pid!).cpu - n0) / ((performance.now() - t0) / 1000)) * 100, 1);
  const metas = await list();
  // When a recording starts: the ingest time of its first frame against the publish command.
  const startDelays = metas.map((m) => Date.parse(m.startedAt) - publishedAt.get(m.stream)!).sort((x, y) => x - y);

  // Rewind: the watch page in Chromium seeks back and returns to live, timed by the page (from the seek to the first
  // picture of the past, by requestVideoFrameCallback).
  const edge = await startRelay('edge', { NATS_URL: nats.url, RELAY_STREAMS: JSON.stringify(streams), RELAY_LOG_LEVEL: 'warn', ...store });
  const seekBack: Record<string, { p50: number; max: number; samples: number[] }> = {};
  try {
    for (const [path, query] of [
      ['websocket', ''],
      ['hls', '?protocol=hls'],
    ] as const) {
      const chromium = await launchChromium();
      const seeks: number[] = [];
      try {
        const page = await chromium.browser.newPage();
        await page.goto(`${edge.http}/watch/s0${query}`);
        const state = () =>
          page.evaluate(() => {
            const p = (window as unknown as { relayPlayer: { state: string; rewind: { windowS: number; ttffMs?: number } } }).relayPlayer;
            return { state: p.state, windowS: p.rewind.windowS, ttffMs: p.rewind.ttffMs };
          });
        await waitFor(
          'the live page with a rewind window of 20 s',
          async () => {
            const x = await state();
            return x.state === 'live' && x.windowS >= 20;
          },
          60_000,
        );
        for (const back of [20, 8, 15, 5, 12, 18]) {
          await page.evaluate((seconds) => {
            const bar = document.getElementById('rewind-seek') as HTMLInputElement;
            bar.value = String(-seconds);
            bar.dispatchEvent(new Event('change'));
          }, back);
          const x = await waitFor(
            'the first picture of the past',
            async () => {
              const y = await state();
              return y.ttffMs !== undefined ? y : undefined;
            },
            20_000,
          );
          seeks.push(Math.round(x.ttffMs!));
          await page.click('#rewind-live');
          await waitFor('live again', async () => (await state()).state === 'live', 20_000);
        }
      } finally {
        await chromium.close();
      }
      seeks.sort((x, y) => x - y);
      seekBack[path] = { p50: quantile(seeks, 0.5), max: seeks.at(-1)!, samples: seeks };
    }
  } finally {
    await edge.stop();
  }
  replay.close();
  await waitFor('the recordings complete', async () => (await list()).every((m) => m.status === 'complete'), 60_000, 500);
  const complete = (await list()).filter((m) => m.status === 'complete' && m.mp4).length;
  await recorder.stop();
  await origin.stop();
  await nats.cleanup();
  return {
    storage,
    recorder: window,
    natsServerCpuPercent,
    startDelayMs: { min: Math.round(startDelays[0]!), max: Math.round(startDelays.at(-1)!) },
    seekBackTtffMs: seekBack,
    complete,
  };
}

const runs = [await relayRun('directory'), await relayRun('nats')];
const [directoryRun] = runs;
const relayWindow = directoryRun!.recorder;

// ---- nginx-rtmp: the same publishers, live only, then with `record all`.
async function nginx(record: boolean): Promise<Window> {
  const folder = join(dir, record ? 'nginx-record' : 'nginx-live');
  mkdirSync(folder, { recursive: true });
  const server = await startNginxRtmp('unused', record ? `record all; record_path ${folder}; record_unique on;` : '');
  const port = new URL(server.publishUrl).port;
  const peerReplay = new ReplayPublishers(tags, new URL(`rtmp://127.0.0.1:${port}/live`));
  try {
    for (const key of keys) peerReplay.add(key, 1000);
    return await steady(server.pid, peerReplay);
  } finally {
    peerReplay.close();
    await server.stop();
  }
}
const nginxLive = await nginx(false);
const nginxRecord = await nginx(true);
rmSync(dir, { recursive: true, force: true });

const perStream = round(relayWindow.cpuPercent / streamCount, 2);
const nginxPerStream = round(Math.max(0, nginxRecord.cpuPercent - nginxLive.cpuPercent) / streamCount, 2);
const result = {
  at: new Date().toISOString(),
  streams: streamCount,
  clipKbps,
  seconds,
  runs,
  recorderPerStreamCpuPercent: perStream,
  nginx: { live: nginxLive, record: nginxRecord, recordingPerStreamCpuPercent: nginxPerStream },
  ratio: nginxPerStream > 0 ? round(perStream / nginxPerStream, 2) : null,
  target: { cpuPercentPerStream: 5, startS: 1, seekBackTtffS: 1 },
};
const label = { directory: 'a folder (recording.storage: directory)', nats: 'NATS Object Store (recording.storage: nats)' } as const;
const md = [
  `Recording, ${result.at} (\`node --import tsx scripts/bench-recording.ts --streams ${streamCount} --seconds ${seconds}\`): ${streamCount} publishers of an OBS-like 720p clip at ${clipKbps} kbit/s (replayed from the bench process) into an origin; a recorder in its own process records every stream's source rendition (CMAF segments of 4 s, playlists, state), ${seconds} s measured, once per storage; then an edge serves the recordings and the watch page in Chromium seeks back 5-20 s six times over each live path.`,
  '',
  '| | CPU, all streams | per stream | nats-server CPU (frames and storage) | publishers (apart) |',
  '|---|---|---|---|---|',
  ...runs.map(
    (r) =>
      `| relay recorder, ${label[r.storage]} | ${r.recorder.cpuPercent}% of a core | **${round(r.recorder.cpuPercent / streamCount, 2)}%** | ${r.natsServerCpuPercent}% | ${r.recorder.publishersCpuPercent}% |`,
  ),
  `| nginx-rtmp, live only | ${nginxLive.cpuPercent}% | | | ${nginxLive.publishersCpuPercent}% |`,
  `| nginx-rtmp, \`record all\` (FLV) | ${nginxRecord.cpuPercent}% | ${nginxPerStream}% more than live only | | ${nginxRecord.publishersCpuPercent}% |`,
  '',
  `Recorder (folder) / nginx-rtmp's recording, per stream: **${result.ratio ?? 'n/a'}x**. Target: at most 5% of a core per 2.5 Mbit/s rendition.`,
  '',
  '| storage | seek back to the first picture, over the WebSocket: p50 (max) | over LL-HLS: p50 (max) | recordings start after the publish command | complete with their MP4 |',
  '|---|---|---|---|---|',
  ...runs.map(
    (r) =>
      `| ${label[r.storage]} | **${r.seekBackTtffMs.websocket!.p50} ms** (${r.seekBackTtffMs.websocket!.max}) | **${r.seekBackTtffMs.hls!.p50} ms** (${r.seekBackTtffMs.hls!.max}) | ${r.startDelayMs.min}-${r.startDelayMs.max} ms (the first keyframe) | ${r.complete} of ${streamCount} |`,
  ),
  '',
  'Targets: seek back to the first picture at most 1 s; a recording starts at most 1 s after the publish.',
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}recording.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}recording.md`, md);
process.stdout.write(md);
process.exit(0);
