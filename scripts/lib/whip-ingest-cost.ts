/**
 * What WHIP publishers cost an origin, per WebRTC engine (webrtc.ingestEngine): one origin process
 * (its mediasoup worker included), `publishers` werift peers each sending a pre-encoded clip
 * (H.264 without B-frames + Opus) in real time from this process (the load generator, reported
 * apart). Figures: the origin's CPU and memory, and the frames per second it publishes to the bus
 * (relay_ingest_frame_rate) against what the publishers send. And what a real WebRTC encoder
 * (Chromium's camera, 720p) sends to each engine: its own congestion control runs on the feedback
 * the ingest gives it (transport-cc from mediasoup; werift's ingest gives none).
 */
import { FAKE_MEDIA_ARGS, launchChromium } from '../../test/helpers/browser.ts';
import { startNats } from '../../test/helpers/nats.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { startRelay } from '../../test/helpers/relay-process.ts';
import { publisherRate, whipPublish } from '../../test/helpers/whip-browser.ts';
import { publishWhipClip, type WhipClip, type WhipPublisher } from '../../test/helpers/whip-publisher.ts';
import { processTreeStat, round } from './figures.ts';
import { ONE_ADDRESS_LOAD } from './one-address.ts';

export interface IngestCost {
  engine: 'mediasoup' | 'werift';
  publishers: number;
  originCpuPercent: number;
  originSysPercent: number;
  originRssMb: number;
  /** Video frames per second the origin received, summed over the streams, and what was sent. */
  framesPerSecond: number;
  expectedFramesPerSecond: number;
  /** This process (the werift publishers). */
  publishersCpuPercent: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sum of a gauge's samples in a Prometheus text exposition. */
function gaugeSum(text: string, name: string): { sum: number; samples: number } {
  let sum = 0;
  let samples = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    samples++;
  }
  return { sum, samples };
}

export async function whipIngestCost(engine: 'mediasoup' | 'werift', publishers: number, clip: WhipClip, seconds: number): Promise<IngestCost> {
  const nats = await startNats();
  const streams = Array.from({ length: publishers }, (_, i) => ({ name: `pub${i}`, key: `bench-whip-ingest-${i}-0123456789`, transcode: false }));
  const origin = await startRelay('origin', {
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify(streams),
    RELAY_CLUSTER_NODE_ID: 'origin-1',
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
    RELAY_WEBRTC_INGEST_ENGINE: engine,
    RELAY_WEBRTC_WORKERS: '1',
  });
  const peers: WhipPublisher[] = [];
  try {
    for (const s of streams) peers.push(await publishWhipClip(`${origin.http}/whip/${s.name}`, s.key, clip));
    const rates = async () => gaugeSum(await (await fetch(`${origin.http}/metrics`)).text(), 'relay_ingest_frame_rate');
    await waitFor('every stream live at the origin', async () => (await rates()).samples === publishers, 30_000, 250);
    await sleep(3000);
    const o0 = processTreeStat(origin.child.pid!);
    const p0 = process.cpuUsage();
    const t0 = performance.now();
    let fps = 0;
    let reads = 0;
    for (const until = t0 + seconds * 1000; performance.now() < until;) {
      await sleep(1000);
      fps += (await rates()).sum;
      reads++;
    }
    const dt = (performance.now() - t0) / 1000;
    const o1 = processTreeStat(origin.child.pid!);
    const p1 = process.cpuUsage(p0);
    return {
      engine,
      publishers,
      originCpuPercent: round(((o1.cpu - o0.cpu) / dt) * 100),
      originSysPercent: round(((o1.sys - o0.sys) / dt) * 100),
      originRssMb: round(o1.rssMb),
      framesPerSecond: round(fps / reads),
      expectedFramesPerSecond: publishers * 30,
      publishersCpuPercent: round(((p1.user + p1.system) / 1e6 / dt) * 100),
    };
  } finally {
    for (const p of peers) await p.stop();
    await origin.stop();
    await nats.cleanup();
  }
}

export interface PublisherRate {
  engine: 'mediasoup' | 'werift';
  /** Chromium's availableOutgoingBitrate 6, 12 and 24 s in. */
  estimateKbps: { at6: number | undefined; at12: number | undefined; at24: number | undefined };
  /** What it sent over the last 4 s, and the picture height it encoded then. */
  sentKbps: number;
  height: number;
}

/** Chromium's fake camera at 1280x720 published over WHIP to an origin on `engine`: how its own estimate grows, and what it sends. */
export async function publisherRateFor(engine: 'mediasoup' | 'werift'): Promise<PublisherRate> {
  const nats = await startNats();
  const key = 'bench-camera-rate-0123456789';
  const origin = await startRelay('origin', {
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify([{ name: 'cam', key, transcode: false }]),
    RELAY_CLUSTER_NODE_ID: 'origin-1',
    RELAY_LOG_LEVEL: 'warn',
    RELAY_WEBRTC_INGEST_ENGINE: engine,
    RELAY_WEBRTC_WORKERS: '1',
  });
  const chromium = await launchChromium(FAKE_MEDIA_ARGS);
  try {
    const page = await chromium.browser.newPage();
    await page.goto(`${origin.http}/healthz`);
    const res = await whipPublish(page, `${origin.http}/whip/cam`, key, { width: 1280, height: 720 });
    if (res.status !== 201) throw new Error(`WHIP publish: ${res.status} ${res.body}`);
    const t0 = performance.now();
    const at = async (s: number) => {
      await sleep(Math.max(0, t0 + s * 1000 - performance.now()));
      return { ...(await publisherRate(page)), t: performance.now() };
    };
    const s6 = await at(6);
    const s12 = await at(12);
    const s20 = await at(20);
    const s24 = await at(24);
    return {
      engine,
      estimateKbps: { at6: s6.estimateKbps, at12: s12.estimateKbps, at24: s24.estimateKbps },
      sentKbps: Math.round(((s24.bytesSent - s20.bytesSent) * 8) / (s24.t - s20.t)),
      height: s24.height,
    };
  } finally {
    await chromium.close();
    await origin.stop();
    await nats.cleanup();
  }
}
