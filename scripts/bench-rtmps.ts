/**
 * RTMPS against RTMP ingest (issue #19): the origin's CPU per 2.5 Mbit/s stream over
 * TLS, as a ratio to plain RTMP measured in the same run on the same machine
 * (target: at most 1.5x). The relay is an origin alone, in its own process, with its
 * own certificate; the publishers replay an OBS-like 720p clip at 2.5 Mbit/s over raw
 * RTMP or TLS from this process (their CPU is reported apart). Rounds alternate
 * RTMP and RTMPS, so that drift on a shared machine falls on both.
 *
 *   node --import tsx scripts/bench-rtmps.ts [--streams 8] [--rounds 2] [--seconds 10]
 *
 * Writes bench-results/rtmps.json and rtmps.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeCa, makeServerCertificate } from '../test/helpers/certificates.ts';
import { startNats } from '../test/helpers/nats.ts';
import { freePort, waitFor } from '../test/helpers/ports.ts';
import { scrape, sample } from '../test/helpers/prometheus.ts';
import { startRelay } from '../test/helpers/relay-process.ts';
import { processStat, round } from './lib/figures.ts';
import { ReplayPublishers } from './lib/replay-publishers.ts';
import { makeObsClip } from './lib/obs-clip.ts';

const { values } = parseArgs({
  options: { streams: { type: 'string', default: '8' }, rounds: { type: 'string', default: '2' }, seconds: { type: 'string', default: '10' } },
});
const streamCount = Number(values.streams);
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const out = new URL('../bench-results/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bench-rtmps-'));

// The clip: OBS-like 720p30 at about 2.5 Mbit/s, 4 s, looped by the replay.
const { tags, kbps: clipKbps } = makeObsClip(dir);

const ca = makeCa(dir, 'bench');
const cert = makeServerCertificate(dir, ca, 'origin');
const keys = Array.from({ length: streamCount }, (_, i) => `bench-rtmps-key-${String(i).padStart(8, '0')}`);
const nats = await startNats();
const rtmpsPort = await freePort();
const relay = await startRelay('origin', {
  NATS_URL: nats.url,
  RELAY_STREAMS: JSON.stringify(keys.map((key, i) => ({ name: `s${i}`, key }))),
  RELAY_RTMPS_HOST: '127.0.0.1',
  RELAY_RTMPS_PORT: String(rtmpsPort),
  RELAY_RTMPS_CERT_FILE: cert.cert,
  RELAY_RTMPS_KEY_FILE: cert.key,
  RELAY_LOG_LEVEL: 'warn',
});
const pid = relay.child.pid!;
const live = async (protocol: string) => sample(await scrape(relay.http), 'relay_ingest_live_streams', { protocol }) ?? 0;

interface Round {
  protocol: 'rtmp' | 'rtmps';
  relayCpuPercent: number;
  perStreamCpuPercent: number;
  publishersCpuPercent: number;
  mbitPerSecond: number;
}

async function measure(protocol: 'rtmp' | 'rtmps'): Promise<Round> {
  const port = protocol === 'rtmp' ? relay.rtmpPort : rtmpsPort;
  const replay = new ReplayPublishers(tags, new URL(`${protocol}://127.0.0.1:${port}/live`));
  try {
    for (const key of keys) replay.add(key, 1000);
    await waitFor(`${streamCount} streams live over ${protocol}`, async () => (await live(protocol)) === streamCount, 20_000, 200);
    await new Promise((r) => setTimeout(r, 3000)); // settle: connections, GOPs, JIT
    const [c0, b0, p0, t0] = [processStat(pid).cpu, replay.totals.bytes, process.cpuUsage(), performance.now()];
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const [c1, b1, p1, t1] = [processStat(pid).cpu, replay.totals.bytes, process.cpuUsage(p0), performance.now()];
    const dt = (t1 - t0) / 1000;
    const relayCpuPercent = ((c1 - c0) / dt) * 100;
    return {
      protocol,
      relayCpuPercent: round(relayCpuPercent),
      perStreamCpuPercent: round(relayCpuPercent / streamCount, 2),
      publishersCpuPercent: round(((p1.user + p1.system) / 1e6 / dt) * 100),
      mbitPerSecond: round(((b1 - b0) * 8) / dt / 1e6),
    };
  } finally {
    replay.close();
    await waitFor('the streams to end', async () => (await live(protocol)) === 0, 20_000, 200);
  }
}

const results: Round[] = [];
for (let r = 0; r < rounds; r++) {
  for (const protocol of r % 2 === 0 ? (['rtmp', 'rtmps'] as const) : (['rtmps', 'rtmp'] as const)) {
    const m = await measure(protocol);
    process.stderr.write(`# ${JSON.stringify(m)}\n`);
    results.push(m);
  }
}
await relay.stop();
await nats.cleanup();
rmSync(dir, { recursive: true, force: true });

const mean = (protocol: string, key: keyof Round) => {
  const xs = results.filter((r) => r.protocol === protocol).map((r) => r[key] as number);
  return round(xs.reduce((a, b) => a + b, 0) / xs.length, 2);
};
const rtmp = mean('rtmp', 'perStreamCpuPercent');
const rtmps = mean('rtmps', 'perStreamCpuPercent');
const result = {
  at: new Date().toISOString(),
  streams: streamCount,
  clipKbps,
  seconds,
  rounds: results,
  perStreamCpuPercent: { rtmp, rtmps },
  ratio: round(rtmps / rtmp, 2),
  target: 1.5,
};
const md = [
  `RTMPS against RTMP ingest, ${result.at} (\`node --import tsx scripts/bench-rtmps.ts --streams ${streamCount} --rounds ${rounds} --seconds ${seconds}\`): an origin alone in its own process, ${streamCount} publishers of an OBS-like 720p clip at ${clipKbps} kbit/s (replayed from the bench process), ${seconds} s per round, rounds alternating.`,
  '',
  '| ingest | origin CPU per stream | origin CPU, all streams | received | publishers (apart) |',
  '|---|---|---|---|---|',
  ...(['rtmp', 'rtmps'] as const).map(
    (p) =>
      `| ${p.toUpperCase()} | ${mean(p, 'perStreamCpuPercent')}% of a core | ${mean(p, 'relayCpuPercent')}% | ${mean(p, 'mbitPerSecond')} Mbit/s | ${mean(p, 'publishersCpuPercent')}% |`,
  ),
  '',
  `RTMPS / RTMP: **${result.ratio}x** per stream (target <= 1.5x).`,
  '',
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(`${out}rtmps.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${out}rtmps.md`, md);
process.stdout.write(md);
process.exit(0);
