/**
 * Bus scale, one process per role, through the relay's own bus code:
 *   origin  publishes renditions with the origin's FramePublisher (one connection,
 *           the configured window of in-flight acknowledgements): per rendition,
 *           30 fps video (a keyframe every 2 s) and 46.875 fps AAC, at `kbps`.
 *   edge    consumes renditions with the edge's StreamFeed and FrameDecoder, and
 *           records publish -> edge latency (the frame's origin receipt time, set
 *           when the origin hands it to the publisher, to its decoding on the edge).
 *
 *   node --import tsx scripts/lib/bus-load.ts origin <nats url> <kbps>
 *   node --import tsx scripts/lib/bus-load.ts edge <nats url>
 *
 * stdin, one JSON line per command: {"streams": ["b0", ...]} publishes (origin) or
 * consumes (edge) these renditions too; {"mark": true} starts a measuring window.
 * stdout, one JSON line per second: frames, failures or back-pressure, latency
 * quantiles since the mark (edge), CPU seconds.
 */
import { createInterface } from 'node:readline';
import { FrameDecoder } from '../../server/core/bus/frame-codec.ts';
import { FramePublisher, type Publication } from '../../server/core/bus/frame-publisher.ts';
import { ensureFrameStream } from '../../server/core/bus/frame-stream.ts';
import { connectNats } from '../../server/core/bus/nats.ts';
import { busLayout } from '../../server/core/bus/shards.ts';
import { loadConfig } from '../../server/core/config/load.ts';
import { createLogger } from '../../server/core/log.ts';
import type { Frame, StreamInit } from '../../server/core/media/frame.ts';
import { StreamFeed } from '../../edge/feed/stream-feed.ts';

const [role, natsUrl, kbpsArg] = process.argv.slice(2) as ['origin' | 'edge', string, string | undefined];
// Defaults, overridable from the environment like the relay's (e.g. RELAY_BUS_MAX_AGE_SECONDS).
const config = loadConfig();
const log = createLogger({ level: 'warn', pretty: false });
const nc = await connectNats(natsUrl, `bench-bus-${role}`, log);
const wallNow = () => performance.timeOrigin + performance.now();
const counters = { frames: 0, failed: 0, backpressure: 0, streams: 0 };

/** Latency histogram in 0.1 ms bins up to 5 s: no allocation per frame. */
const BIN_MS = 0.1;
const bins = new Uint32Array(50_000);
let observations = 0;
function observe(ms: number): void {
  bins[Math.max(0, Math.min(bins.length - 1, Math.floor(ms / BIN_MS)))]!++;
  observations++;
}
function quantileMs(q: number): number {
  const target = q * observations;
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    seen += bins[i]!;
    if (seen >= target && seen > 0) return (i + 1) * BIN_MS;
  }
  return NaN;
}

let addStreams: (names: string[]) => void;

if (role === 'origin') {
  await ensureFrameStream(nc, config.bus, log);
  const publisher = new FramePublisher(nc, { window: config.bus.publishWindow, timeoutMs: config.bus.publishTimeoutMs, log });
  publisher.on('failure', () => counters.failed++);
  const kbps = Number(kbpsArg ?? 1000);
  const init: StreamInit = {
    video: {
      codec: 'h264',
      config: Buffer.from('01640020ffe1001967640020acd9405005bb011000003e90000bb800f18319600100068ee3cb22c0fdf8f800', 'hex'),
      codecString: 'avc1.640020',
      width: 1280,
      height: 720,
    },
    audio: { codec: 'aac', config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
    metadata: { encoder: 'bench-bus' },
  };
  // Frame sizes of a `kbps` rendition with a 2 s GOP: the keyframe about 8 delta frames' worth. Payloads are shared.
  const audioBytes = 341; // 128 kbit/s AAC
  const videoBits = Math.max(100, kbps - 128) * 1000 * 2; // per GOP of 60 frames
  const delta = Buffer.alloc(Math.round(videoBits / 8 / (59 + 8)), 1);
  const key = Buffer.alloc(delta.length * 8, 2);
  interface Rendition {
    pub: Publication;
    videoDue: number;
    audioDue: number;
    n: number;
    a: number;
  }
  const renditions: Rendition[] = [];
  addStreams = (names) => {
    const now = performance.now();
    for (const name of names) {
      renditions.push({
        pub: publisher.open(busLayout(config.bus).subjects(name, 'source'), 1),
        videoDue: now + Math.random() * 33,
        audioDue: now + Math.random() * 21,
        n: 0,
        a: 0,
      });
    }
    counters.streams = renditions.length;
  };
  const frame = (track: 'video' | 'audio', dts: number, keyframe: boolean, payload: Buffer): Frame => ({
    track,
    codec: track === 'video' ? 'h264' : 'aac',
    dts,
    cto: track === 'video' ? 6000 : 0,
    keyframe,
    payload,
    receivedAt: wallNow(),
    init,
  });
  // One timer, as an origin's sockets would deliver: every due frame of every rendition goes out in order.
  setInterval(() => {
    const now = performance.now();
    for (const r of renditions) {
      while (r.videoDue <= now) {
        const isKey = r.n % 60 === 0;
        if (!r.pub.push(frame('video', r.n * 3000, isKey, isKey ? key : delta))) counters.backpressure++;
        r.n++;
        r.videoDue += 1000 / 30;
        counters.frames++;
      }
      while (r.audioDue <= now) {
        if (!r.pub.push(frame('audio', r.a * 1920, true, delta.subarray(0, audioBytes)))) counters.backpressure++;
        r.a++;
        r.audioDue += 1024 / 48;
        counters.frames++;
      }
    }
  }, 2);
} else {
  addStreams = (names) => {
    for (const name of names) {
      const decoder = new FrameDecoder();
      const feed = new StreamFeed(
        nc,
        {
          locate: async () => ({ jsStream: busLayout(config.bus).shardOf(name).jsStream, subjects: busLayout(config.bus).subjects(name, 'source') }),
          maxMessages: config.edge.consumerMaxMessages,
          watchdogIntervalMs: config.edge.watchdogIntervalMs,
          log,
        },
        (data) => {
          const m = decoder.decode(data);
          if (m.kind !== 'frame') return;
          counters.frames++;
          observe(wallNow() - m.frame.receivedAt);
        },
      );
      void feed.start().then(
        () => counters.streams++,
        (err: Error) => {
          counters.failed++;
          log.warn({ err: err.message }, 'feed failed to start');
        },
      );
    }
  };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { streams?: string[]; mark?: boolean };
  if (cmd.streams) addStreams(cmd.streams);
  if (cmd.mark) {
    bins.fill(0);
    observations = 0;
  }
});
process.stdin.on('end', () => process.exit(0));
setInterval(() => {
  const cpu = process.cpuUsage();
  process.stdout.write(
    JSON.stringify({
      ...counters,
      observations,
      p50Ms: quantileMs(0.5),
      p99Ms: quantileMs(0.99),
      maxMs: quantileMs(1),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    }) + '\n',
  );
}, 1000);
