/**
 * SRT ingest against RTMP ingest (issue #24), three figures, each against RTMP in the same run:
 *
 * 1. Latency: one OBS-like ffmpeg encodes once and sends the same packets over RTMP and over
 *    SRT (ffmpeg's tee muxer, one process, so both leave at the same moment); a WebSocket
 *    viewer on each stream records when each video frame arrives. SRT's extra time per frame
 *    is the difference (target: at most the SRT latency + 50 ms).
 * 2. CPU: an origin alone in its own process, N publishers of an OBS-like 720p clip at about
 *    2.5 Mbit/s over RTMP (replayed from this process) or over SRT (ffmpeg -c copy callers,
 *    their CPU reported apart); the origin's CPU per stream (target: SRT at most 2x RTMP).
 *    Rounds alternate, so that drift on a shared machine falls on both.
 * 3. Loss: the clip over SRT through a relay that drops 5% of packets each way; frames
 *    missing at a viewer (target: 0).
 *
 *   node --import tsx scripts/bench-srt.ts [--streams 8] [--rounds 2] [--seconds 10] [--latency 120]
 *
 * Writes bench-results/srt.json and srt.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startLossyUdp } from '../test/helpers/lossy-udp.ts';
import { startNats } from '../test/helpers/nats.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { scrape, sample } from '../test/helpers/prometheus.ts';
import { startRelay, type RelayProcess } from '../test/helpers/relay-process.ts';
import { videoRuns, watch } from '../test/helpers/ws-viewer.ts';
import { processStat, quantile, round } from './lib/figures.ts';
import { makeObsClip } from './lib/obs-clip.ts';
import { ReplayPublishers } from './lib/replay-publishers.ts';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '10' },
    latency: { type: 'string', default: '120' },
  },
});
const streamCount = Number(values.streams);
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const latencyMs = Number(values.latency);
const out = new URL('../bench-results/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bench-srt-'));

const { tags, kbps: clipKbps } = makeObsClip(dir);
const clipTs = join(dir, 'clip.ts');
execFileSync('ffmpeg', ['-v', 'error', '-i', join(dir, 'clip.flv'), '-c', 'copy', '-f', 'mpegts', clipTs]);
// The loss run's clip: the same encoding, 12 s in one piece (a looped copy drops a frame or two at each join).
const LOSS_SECONDS = 12;
const lossClip = join(dir, 'loss.ts');
execFileSync('ffmpeg', [
  ...['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=sample_rate=48000', '-t', String(LOSS_SECONDS)],
  ...['-c:v', 'libx264', '-profile:v', 'high', '-preset', 'veryfast', '-bf', '2', '-g', '60', '-pix_fmt', 'yuv420p'],
  ...['-b:v', '2300k', '-maxrate', '2300k', '-bufsize', '4600k', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-f', 'mpegts', lossClip],
]);

const keys = Array.from({ length: streamCount }, (_, i) => `bench-srt-key-${String(i).padStart(8, '0')}`);
const streams = [
  ...keys.map((key, i) => ({ name: `s${i}`, key })),
  { name: 'viartmp', key: 'bench-srt-rtmp-key-0000' },
  { name: 'viasrt', key: 'bench-srt-srt-key-00000' },
];
const nats = await startNats();
const env = { NATS_URL: nats.url, RELAY_STREAMS: JSON.stringify(streams), RELAY_SRT_LATENCY_MS: String(latencyMs) };

/** CPU seconds of processes (the SRT callers), by /proc. */
const cpuOf = (children: ChildProcess[]) => children.reduce((n, c) => n + (c.pid && c.exitCode === null ? processStat(c.pid).cpu : 0), 0);

function ffmpegCopy(url: string, format: 'mpegts' | 'flv', extra: string[] = []): ChildProcess {
  return spawn('ffmpeg', ['-v', 'error', '-re', '-stream_loop', '-1', '-i', clipTs, ...extra, '-c', 'copy', '-f', format, url], { stdio: 'ignore' });
}

// 1. Latency: one encoder, two protocols.
async function latency(relay: RelayProcess): Promise<{ frames: number; extraMs: { p50: number; p95: number; max: number } }> {
  const rtmpViewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/viartmp`);
  const srtViewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/viasrt`);
  await Promise.all([rtmpViewer.opened, srtViewer.opened]);
  const srtUrl = `${relay.srtUrl('bench-srt-srt-key-00000')}&latency=${latencyMs * 1000}`;
  const args = [
    '-v',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=1280x720:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=sample_rate=48000',
    '-t',
    String(seconds + 4),
  ];
  args.push('-c:v', 'libx264', '-profile:v', 'high', '-preset', 'veryfast', '-bf', '2', '-g', '60', '-pix_fmt', 'yuv420p', '-b:v', '2300k');
  args.push('-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-map', '0:v', '-map', '1:a', '-flags', '+global_header', '-f', 'tee');
  args.push(`[f=flv:onfail=abort]${relay.rtmpUrl('bench-srt-rtmp-key-0000')}|[f=mpegts]${srtUrl}`);
  const encoder = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => encoder.on('exit', r));
  await waitFor(
    'both streams ended',
    () => [rtmpViewer, srtViewer].every((v) => v.record.controls.some((c) => c.type === 'status' && c.state === 'ended')),
    20_000,
  );
  rtmpViewer.close();
  srtViewer.close();
  // Each video fragment's arrival, matched by the frame's time since the stream's first frame.
  const arrivals = (v: ReturnType<typeof watch>) => {
    const runs = videoRuns(v.record);
    const first = runs[0]!.baseDecodeTime;
    const byFrame = new Map<number, number>();
    let i = 0;
    for (const f of v.record.fragments)
      for (const t of f.tracks) if (t.trackId === 1) byFrame.set(Math.round((runs[i++]!.baseDecodeTime - first) / 3000), f.at);
    return byFrame;
  };
  const viaRtmp = arrivals(rtmpViewer);
  const viaSrt = arrivals(srtViewer);
  const extra: number[] = [];
  for (const [frame, at] of viaSrt) {
    const rtmpAt = viaRtmp.get(frame);
    if (rtmpAt !== undefined && frame > 30) extra.push(at - rtmpAt); // past the first second (both connecting)
  }
  const ingest = sample(await scrape(relay.http), 'relay_ingest_publisher_connects_total', { protocol: 'srt' });
  if (!ingest) throw new Error('the SRT publisher never connected');
  extra.sort((a, b) => a - b);
  return { frames: extra.length, extraMs: { p50: round(quantile(extra, 0.5)), p95: round(quantile(extra, 0.95)), max: round(extra.at(-1)!) } };
}

// 2. CPU per stream, RTMP against SRT.
interface Round {
  protocol: 'rtmp' | 'srt';
  relayCpuPercent: number;
  perStreamCpuPercent: number;
  publishersCpuPercent: number;
  mbitPerSecond: number;
}

async function cpu(origin: RelayProcess, protocol: 'rtmp' | 'srt'): Promise<Round> {
  const live = async () => sample(await scrape(origin.http), 'relay_ingest_live_streams', { protocol }) ?? 0;
  const bytes = async () => {
    const text = await scrape(origin.http);
    return keys.reduce((n, _k, i) => n + (sample(text, 'relay_ingest_bytes_per_second', { stream: `s${i}` }) ?? 0), 0);
  };
  const replay = protocol === 'rtmp' ? new ReplayPublishers(tags, new URL(`rtmp://127.0.0.1:${origin.rtmpPort}/live`)) : undefined;
  const callers = protocol === 'srt' ? keys.map((key) => ffmpegCopy(`${origin.srtUrl(key)}&latency=${latencyMs * 1000}`, 'mpegts')) : [];
  try {
    for (const key of replay ? keys : []) replay!.add(key, 1000);
    await waitFor(`${streamCount} streams live over ${protocol}`, async () => (await live()) === streamCount, 30_000, 200);
    await new Promise((r) => setTimeout(r, 3000)); // settle: connections, GOPs, JIT
    const pid = origin.child.pid!;
    const [c0, p0, q0, t0] = [processStat(pid).cpu, process.cpuUsage(), cpuOf(callers), performance.now()];
    let rate = 0;
    for (let s = 0; s < seconds; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      rate += await bytes();
    }
    const [c1, p1, q1, t1] = [processStat(pid).cpu, process.cpuUsage(p0), cpuOf(callers), performance.now()];
    const dt = (t1 - t0) / 1000;
    const relayCpuPercent = ((c1 - c0) / dt) * 100;
    const publishers = protocol === 'rtmp' ? (p1.user + p1.system) / 1e6 : q1 - q0;
    return {
      protocol,
      relayCpuPercent: round(relayCpuPercent),
      perStreamCpuPercent: round(relayCpuPercent / streamCount, 2),
      publishersCpuPercent: round((publishers / dt) * 100),
      mbitPerSecond: round((rate / seconds) * 8e-6),
    };
  } finally {
    replay?.close();
    for (const c of callers) c.kill('SIGKILL');
    await waitFor('the streams to end', async () => (await live()) === 0, 30_000, 200);
  }
}

// 3. Frames missing at 5% loss.
async function loss(
  relay: RelayProcess,
): Promise<{ expected: number; received: number; missing: number; lost: number; retransmitted: number; dropped: number; relayDropped: number }> {
  const lossy = await startLossyUdp({ host: '127.0.0.1', port: Number(new URL(relay.srtUrl('x')).port) }, 0.05, 24);
  const viewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/s0`);
  await viewer.opened;
  const url = `srt://127.0.0.1:${lossy.port}?streamid=${keys[0]}&latency=${latencyMs * 1000}&linger=3`;
  const caller = spawn('ffmpeg', ['-v', 'error', '-re', '-i', lossClip, '-c', 'copy', '-f', 'mpegts', url], { stdio: 'ignore' });
  await new Promise((r) => caller.on('exit', r));
  await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 20_000);
  viewer.close();
  await lossy.close();
  const frames = videoRuns(viewer.record);
  const expected = LOSS_SECONDS * 30;
  const left = relay
    .output()
    .split('\n')
    .filter((l) => l.includes('"SRT publisher left"') && l.includes('"stream":"s0"'))
    .map((l) => JSON.parse(l) as Record<string, number>)
    .at(-1)!;
  return {
    expected,
    received: frames.length,
    missing: expected - frames.length,
    lost: left.lost!,
    retransmitted: left.retransmitted!,
    dropped: left.dropped!,
    relayDropped: lossy.stats.dropped,
  };
}

const all = await startRelay('all', { ...env, RELAY_LOG_LEVEL: 'info' });
const lat = await latency(all);
process.stderr.write(`# latency ${JSON.stringify(lat)}\n`);
const lossResult = await loss(all);
process.stderr.write(`# loss ${JSON.stringify(lossResult)}\n`);
await all.stop();

const origin = await startRelay('origin', { ...env, RELAY_LOG_LEVEL: 'warn' });
const results: Round[] = [];
for (let r = 0; r < rounds; r++) {
  for (const protocol of r % 2 === 0 ? (['rtmp', 'srt'] as const) : (['srt', 'rtmp'] as const)) {
    const m = await cpu(origin, protocol);
    process.stderr.write(`# ${JSON.stringify(m)}\n`);
    results.push(m);
  }
}
await origin.stop();
await nats.cleanup();
rmSync(dir, { recursive: true, force: true });

const mean = (protocol: string, key: keyof Round) => {
  const xs = results.filter((r) => r.protocol === protocol).map((r) => r[key] as number);
  return round(xs.reduce((a, b) => a + b, 0) / xs.length, 2);
};
const rtmpCpu = mean('rtmp', 'perStreamCpuPercent');
const srtCpu = mean('srt', 'perStreamCpuPercent');
const result = {
  at: new Date().toISOString(),
  latencyMs,
  latency: lat,
  loss: lossResult,
  streams: streamCount,
  clipKbps,
  seconds,
  rounds: results,
  perStreamCpuPercent: { rtmp: rtmpCpu, srt: srtCpu },
  cpuRatio: round(srtCpu / rtmpCpu, 2),
  targets: { extraLatencyMs: latencyMs + 50, cpuRatio: 2, missing: 0 },
};
const md = [
  `SRT against RTMP ingest, ${result.at} (\`node --import tsx scripts/bench-srt.ts --streams ${streamCount} --rounds ${rounds} --seconds ${seconds} --latency ${latencyMs}\`).`,
  '',
  `**Latency.** One ffmpeg (720p30 H.264 High with B-frames at 2.3 Mbit/s, AAC) sends the same packets over RTMP and over SRT (tee muxer, SRT latency ${latencyMs} ms); a WebSocket viewer on each stream: each frame reached the SRT viewer **${lat.extraMs.p50} ms** later than the RTMP one at the median, ${lat.extraMs.p95} ms at p95, ${lat.extraMs.max} ms at most, over ${lat.frames} frames (target: at most the SRT latency + 50 = ${latencyMs + 50} ms).`,
  '',
  `**CPU.** An origin alone in its own process, ${streamCount} publishers of an OBS-like 720p clip at ${clipKbps} kbit/s, ${seconds} s per round, rounds alternating: RTMP replayed from the bench process, SRT by ffmpeg -c copy callers.`,
  '',
  '| ingest | origin CPU per stream | origin CPU, all streams | received | publishers (apart) |',
  '|---|---|---|---|---|',
  ...(['rtmp', 'srt'] as const).map(
    (p) =>
      `| ${p.toUpperCase()} | ${mean(p, 'perStreamCpuPercent')}% of a core | ${mean(p, 'relayCpuPercent')}% | ${mean(p, 'mbitPerSecond')} Mbit/s | ${mean(p, 'publishersCpuPercent')}% |`,
  ),
  '',
  `SRT / RTMP: **${result.cpuRatio}x** per stream (target <= 2x).`,
  '',
  `**Loss.** A 12 s OBS-like 720p clip over SRT through a relay dropping 5% of packets each way (${lossResult.relayDropped} dropped): the receiver saw ${lossResult.lost} packets missing, got ${lossResult.retransmitted} retransmissions, gave up ${lossResult.dropped}; the viewer got ${lossResult.received} of ${lossResult.expected} frames: **${lossResult.missing} missing** (target 0).`,
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}srt.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}srt.md`, md);
process.stdout.write(md);
process.exit(0);
