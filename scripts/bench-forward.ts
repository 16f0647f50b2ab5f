/**
 * Forwarding (restreaming): what forwarding a 2.5 Mbit/s stream to another RTMP server costs, against nginx-rtmp's
 * `push` measured in the same run. Publishers replay an OBS-like 720p clip over RTMP from this process (their CPU
 * is reported apart); the targets are a second nginx-rtmp (a sink, not measured). The relay's cost of forwarding is
 * its origin's CPU, its ffmpeg children included, with every stream forwarded, minus the same origin's CPU with none;
 * nginx-rtmp's is its CPU with `push` minus its CPU without. Both sinks' received bytes are reported, so that a
 * forward that sends nothing cannot look cheap.
 *
 *   node --import tsx scripts/bench-forward.ts [--streams 8] [--seconds 20]
 *
 * Writes bench-results/forward.json and forward.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startNats } from '../test/helpers/nats.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startRelay } from '../test/helpers/relay-process.ts';
import { processStat, processTreeStat, round } from './lib/figures.ts';
import { makeObsClip } from './lib/obs-clip.ts';
import { startNginxRtmp } from './lib/peer-servers.ts';
import { ReplayPublishers } from './lib/replay-publishers.ts';

const { values } = parseArgs({ options: { streams: { type: 'string', default: '8' }, seconds: { type: 'string', default: '20' } } });
const streamCount = Number(values.streams);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bench-forward-'));
const { tags, kbps: clipKbps } = makeObsClip(dir);
const keys = Array.from({ length: streamCount }, (_, i) => `bench-forward-key-${String(i).padStart(8, '0')}`);

interface Window {
  /** The server's CPU, its children included (the relay's forwarding ffmpeg), percent of a core. */
  cpuPercent: number;
  /** Of it, the server process alone (the rest: the relay's forwarding ffmpeg). */
  ownCpuPercent: number;
  publishersCpuPercent: number;
  /** What the publishers sent, and what reached the sink (the forwards), Mbit/s. */
  inMbitPerSecond: number;
  sinkMbitPerSecond: number;
}

/**
 * The sink: a TCP proxy in front of a second nginx-rtmp that counts the bytes forwarded to it (from the
 * forwarding side: RTMP chunks, about the stream's bitrate).
 */
async function startSink(): Promise<{ url: string; bytes(): number; stop(): Promise<void> }> {
  const nginx = await startNginxRtmp('unused');
  const target = Number(new URL(nginx.publishUrl).port);
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => (bytes += d.length));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `rtmp://127.0.0.1:${(proxy.address() as net.AddressInfo).port}/live`,
    bytes: () => bytes,
    stop: async () => {
      for (const s of sockets) s.destroy();
      proxy.close();
      await nginx.stop();
    },
  };
}

/** CPU of the server `pid` (and its children) over `seconds` of steady publishing, after a settling pause. */
async function steady(pid: number, replay: ReplayPublishers, sink: { bytes(): number }): Promise<Window> {
  await new Promise((r) => setTimeout(r, 4000)); // settle: connections, ffmpeg started, GOPs, JIT
  const [c0, o0, b0, s0, p0, t0] = [processTreeStat(pid).cpu, processStat(pid).cpu, replay.totals.bytes, sink.bytes(), process.cpuUsage(), performance.now()];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [c1, o1, b1, s1, p1, t1] = [processTreeStat(pid).cpu, processStat(pid).cpu, replay.totals.bytes, sink.bytes(), process.cpuUsage(p0), performance.now()];
  const dt = (t1 - t0) / 1000;
  return {
    cpuPercent: round(((c1 - c0) / dt) * 100, 2),
    ownCpuPercent: round(((o1 - o0) / dt) * 100, 2),
    publishersCpuPercent: round(((p1.user + p1.system) / 1e6 / dt) * 100, 1),
    inMbitPerSecond: round(((b1 - b0) * 8) / dt / 1e6, 1),
    sinkMbitPerSecond: round(((s1 - s0) * 8) / dt / 1e6, 1),
  };
}

async function relay(forward: boolean): Promise<Window> {
  const sink = await startSink();
  const nats = await startNats();
  const streams = keys.map((key, i) => ({ name: `s${i}`, key, ...(forward ? { forward: [`${sink.url}/fwd${i}`] } : {}) }));
  const origin = await startRelay('origin', { NATS_URL: nats.url, RELAY_STREAMS: JSON.stringify(streams), RELAY_LOG_LEVEL: 'warn' });
  const replay = new ReplayPublishers(tags, new URL(`rtmp://127.0.0.1:${origin.rtmpPort}/live`));
  try {
    for (const key of keys) replay.add(key, 1000);
    if (forward) await waitFor('every forward sending', () => sink.bytes() > streamCount * 100_000, 30_000, 200);
    return await steady(origin.child.pid!, replay, sink);
  } finally {
    replay.close();
    await origin.stop();
    await nats.cleanup();
    await sink.stop();
  }
}

async function nginx(push: boolean): Promise<Window> {
  const sink = await startSink();
  const server = await startNginxRtmp('unused', push ? `push ${sink.url};` : '');
  const replay = new ReplayPublishers(tags, new URL(`rtmp://127.0.0.1:${new URL(server.publishUrl).port}/live`));
  try {
    for (const key of keys) replay.add(key, 1000);
    if (push) await waitFor('every push sending', () => sink.bytes() > streamCount * 100_000, 30_000, 200);
    return await steady(server.pid, replay, sink);
  } finally {
    replay.close();
    await server.stop();
    await sink.stop();
  }
}

const relayNone = await relay(false);
const relayForward = await relay(true);
const nginxNone = await nginx(false);
const nginxPush = await nginx(true);
rmSync(dir, { recursive: true, force: true });

const perStream = round(Math.max(0, relayForward.cpuPercent - relayNone.cpuPercent) / streamCount, 2);
const ffmpegPerStream = round((relayForward.cpuPercent - relayForward.ownCpuPercent) / streamCount, 2);
const nginxPerStream = round(Math.max(0, nginxPush.cpuPercent - nginxNone.cpuPercent) / streamCount, 2);
const result = {
  at: new Date().toISOString(),
  streams: streamCount,
  clipKbps,
  seconds,
  relay: { none: relayNone, forward: relayForward, forwardPerStreamCpuPercent: perStream, ffmpegPerStreamCpuPercent: ffmpegPerStream },
  nginx: { none: nginxNone, push: nginxPush, pushPerStreamCpuPercent: nginxPerStream },
  ratio: nginxPerStream > 0 ? round(perStream / nginxPerStream, 2) : null,
};
const line = (name: string, w: Window) =>
  `| ${name} | ${w.cpuPercent}% | ${w.ownCpuPercent}% | ${w.inMbitPerSecond} Mbit/s | ${w.sinkMbitPerSecond} Mbit/s | ${w.publishersCpuPercent}% |`;
const md = [
  `Forwarding, ${result.at} (\`node --import tsx scripts/bench-forward.ts --streams ${streamCount} --seconds ${seconds}\`): ${streamCount} publishers of an OBS-like 720p clip at ${clipKbps} kbit/s (replayed from the bench process) into the server; each stream forwarded to a second nginx-rtmp (the sink, behind a counting proxy), ${seconds} s measured.`,
  '',
  '| server | CPU, all streams (children included) | of it the server process | published | reached the sink | publishers (apart) |',
  '|---|---|---|---|---|---|',
  line('relay origin, no forward', relayNone),
  line('relay origin, `streams[].forward` (one ffmpeg -c copy per stream)', relayForward),
  line('nginx-rtmp, no push', nginxNone),
  line('nginx-rtmp, `push`', nginxPush),
  '',
  `What forwarding adds per stream: relay **${perStream}%** of a core (of it the forwarding ffmpeg ${ffmpegPerStream}%), nginx-rtmp ${nginxPerStream}%: **${result.ratio ?? 'n/a'}x**.`,
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}forward.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}forward.md`, md);
process.stdout.write(md);
process.exit(0);
