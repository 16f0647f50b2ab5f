// mediasoup behind the WebRtcEngine interface: the only place that knows mediasoup's workers,
// routers, transports, producers and consumers (sdp.ts maps SDP to its parameters).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { availableParallelism, networkInterfaces } from 'node:os';
import { arch } from 'node:process';
import { fileURLToPath } from 'node:url';
import type { types } from 'mediasoup';
import { RelayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Frame, StreamInit } from '../../media/frame.ts';
import { RTP_HEADER_BYTES, writeRtpHeader } from '../../media/rtp/srtp-protector.ts';
import { readRtpPacket } from '../../media/rtp/rtp-packet.ts';
import type { RtpPacketLike } from '../../media/rtp/h264-depacketizer.ts';
import { KeyframeThrottle } from '../keyframe-throttle.ts';
import { RtpFanout } from '../rtp-fanout.ts';
import type { IceSettings, IngestSession, RtcBroadcast, RtcBroadcastOptions, RtcViewerSession, RtpOut, WebRtcEngine } from '../webrtc-engine.ts';
import {
  parseWhepOffer,
  parseWhipOffer,
  renderAnswer,
  codecsWithOfferRtx,
  extensionsWithOfferIds,
  routerCodecsFor,
  type AnswerTrack,
  type WhepOffer,
} from './sdp.ts';

type Mediasoup = typeof import('mediasoup');

export interface MediasoupSettings extends IceSettings {
  /** Worker processes: one per core by default (0). */
  workers: number;
  /** UDP and TCP port of worker i's WebRtcServer is this + i (0: any free port, or one from portRange). */
  serverPort: number;
  /** WHEP viewers on the workers (`mediasoup`), or on the werift engine given (`werift`). */
  viewers: 'mediasoup' | 'werift';
  /** WHIP publishers on the workers (`mediasoup`), or on the werift engine given (`werift`). */
  ingest: 'mediasoup' | 'werift';
}

const PROJECT_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** A mediasoup worker binary, and whether it has the relay's patches (scripts/mediasoup-worker/*.patch). */
export interface MediasoupWorker {
  bin: string;
  /** Built by scripts/lib/mediasoup-worker.sh: consumers send their viewers' own header extension ids. */
  patched: boolean;
}

/**
 * Where a mediasoup worker is, if anywhere: MEDIASOUP_WORKER_BIN (patched if it is the project's
 * build, by its path), the project's cache (scripts/lib/mediasoup-worker.sh builds it there, keyed by
 * the version, the machine and the recipe's hash), or the prebuilt one npm installs where the network
 * is open (unpatched).
 */
export function findMediasoupWorker(): MediasoupWorker | undefined {
  let version: string;
  try {
    version = (JSON.parse(readFileSync(`${PROJECT_ROOT}node_modules/mediasoup/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return undefined; // mediasoup is not installed
  }
  const machine = arch === 'x64' ? 'x86_64' : arch === 'arm64' ? 'aarch64' : arch;
  const ours = `${PROJECT_ROOT}.cache/mediasoup-worker/${version}-${machine}-${recipeHash()}/mediasoup-worker`;
  const env = process.env.MEDIASOUP_WORKER_BIN;
  if (env && existsSync(env)) return { bin: env, patched: env.includes('/.cache/mediasoup-worker/') };
  if (existsSync(ours)) return { bin: ours, patched: true };
  const prebuilt = `${PROJECT_ROOT}node_modules/mediasoup/worker/out/Release/mediasoup-worker`;
  return existsSync(prebuilt) ? { bin: prebuilt, patched: false } : undefined;
}

/** The build recipe's fingerprint, as scripts/lib/mediasoup-worker.sh computes it (sha256 of `sha256sum` lines). */
export function recipeHash(): string {
  const dir = `${PROJECT_ROOT}scripts/mediasoup-worker`;
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(PROJECT_ROOT, join(e.parentPath, e.name)))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const lines = files
    .map(
      (f) =>
        `${createHash('sha256')
          .update(readFileSync(join(PROJECT_ROOT, f)))
          .digest('hex')}  ${f}\n`,
    )
    .join('');
  return createHash('sha256').update(lines).digest('hex').slice(0, 12);
}

/** H.264 (the profiles our renditions and WHIP sources use, packetization mode 1) and Opus. */
const MEDIA_CODECS: types.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48_000, channels: 2 },
  ...['42e01f', '42001f', '4d001f', '640032'].map((profile): types.RouterRtpCodecCapability => ({
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90_000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': profile, 'level-asymmetry-allowed': 1 },
    rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }, { type: 'goog-remb' }, { type: 'transport-cc' }],
  })),
];

const VIDEO_PT = 102;
const AUDIO_PT = 111;
/** How long a viewer's offer waits for the rendition's first frame (the rendition was just made for it). */
const FIRST_FRAME_WAIT_MS = 5000;
/** A viewer's estimate starts here when the top layer's rate is not known (a 2.5 Mbit/s source with audio fits). */
const DEFAULT_START_BPS = 3_000_000;
/**
 * With the top layer's rate known: the estimate starts this much above it (the top layer is picked at
 * once), and is held below this much above it. An estimate floating far above what is sent (the
 * SFU's normal, application-limited case) came down slowly when the link dropped: from 3 Mbit/s over a
 * 1 Mbit/s layer, 4 s and 300-700 lost packets to reach a 600 kbit/s link, against 1-2 s and 20-100 held near it.
 */
const START_OVER_TOP = 1.2;
const MAX_OVER_TOP = 1.5;
/** A dead worker is started again after this long (doubling while it keeps dying, up to 30 s). */
const RESTART_MIN_MS = 500;

interface Slot {
  index: number;
  worker: types.Worker;
  server: types.WebRtcServer;
  /** Where renditions' producers live (our payload types). */
  router: types.Router;
  /** Viewers' routers, by the payload types they speak (see routerCodecsFor). */
  viewerRouters: Map<string, Promise<types.Router>>;
  viewers: number;
}

/** Viewers' routers per worker: one per browser family in practice; a bound against offers made up to exhaust it. */
const MAX_VIEWER_ROUTERS = 16;

/**
 * WHEP through mediasoup's C++ workers: one per core, each with a WebRtcServer (all its viewers
 * share one UDP port) and a router. A rendition's frames are packetized once (RFC 6184) and go
 * into producers on a DirectTransport; each viewer is a WebRtcTransport with consumers, on the
 * least loaded worker (the producers piped there once). The worker does SRTP, NACK/RTX, PLI,
 * and congestion control. WHIP publishers too (ingestOnWorker), unless settings say werift for either.
 */
export class MediasoupEngine implements WebRtcEngine {
  readonly name = 'mediasoup';
  readonly simulcast: boolean;
  private readonly slots: (Slot | undefined)[] = [];
  private readonly broadcasts = new Set<MediasoupBroadcast>();
  private closed = false;

  private constructor(
    private readonly ms: Mediasoup,
    private readonly settings: MediasoupSettings,
    /** The worker sends each consumer's own header extension ids (see scripts/mediasoup-worker/whep-consumers.patch). */
    private readonly patched: boolean,
    private readonly werift: Pick<WebRtcEngine, 'ingest' | 'warmUp' | 'broadcast'>,
    private readonly log: Logger,
  ) {
    this.simulcast = settings.viewers === 'mediasoup';
  }

  /** Starts the workers, of the binary findMediasoupWorker found. */
  static async start(
    settings: MediasoupSettings,
    worker: MediasoupWorker,
    werift: Pick<WebRtcEngine, 'ingest' | 'warmUp' | 'broadcast'>,
    log: Logger,
  ): Promise<MediasoupEngine> {
    process.env.MEDIASOUP_WORKER_BIN = worker.bin; // read by mediasoup when first imported
    const ms = await import('mediasoup');
    const engine = new MediasoupEngine(ms, settings, worker.patched, werift, log);
    if (!worker.patched)
      log.warn(
        { bin: worker.bin },
        "a mediasoup worker without the relay's patch: WebRTC viewers get no header extensions, so no bandwidth estimate and no layer switching (scripts/start builds the patched one)",
      );
    const count = settings.workers > 0 ? settings.workers : availableParallelism();
    try {
      await Promise.all(Array.from({ length: count }, (_, i) => engine.startSlot(i)));
    } catch (err) {
      await engine.close();
      throw err;
    }
    log.info({ workers: count, version: ms.version, pids: engine.workerPids, bin: worker.bin }, 'mediasoup workers up');
    return engine;
  }

  private async startSlot(index: number, delayMs = RESTART_MIN_MS): Promise<void> {
    const worker = await this.ms.createWorker({ logLevel: 'warn', disableLiburing: true });
    const startedAt = Date.now();
    let server: types.WebRtcServer | undefined;
    try {
      const { serverPort, portRange, announcedAddresses } = this.settings;
      const announcedAddress = announcedAddresses[0] ?? hostAddress();
      const where = serverPort > 0 ? { port: serverPort + index } : portRange ? { portRange: { min: portRange[0], max: portRange[1] } } : {};
      // UDP and TCP on the same port when it is fixed; from the range (or any free one) otherwise.
      server = await worker.createWebRtcServer({
        listenInfos: [
          { protocol: 'udp', ip: '0.0.0.0', announcedAddress, ...where },
          { protocol: 'tcp', ip: '0.0.0.0', announcedAddress, ...where },
        ],
      });
      const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
      const slot: Slot = { index, worker, server, router, viewerRouters: new Map(), viewers: 0 };
      this.slots[index] = slot;
      worker.on('died', (err) => {
        if (this.slots[index] === slot) this.slots[index] = undefined;
        if (this.closed) return;
        this.log.error({ worker: index, pid: worker.pid, err: err.message }, 'mediasoup worker died: its viewers reconnect; restarting it');
        // Soon again if it keeps dying, each time twice as late (30 s at most); a worker that lived a while starts over.
        const wait = Date.now() - startedAt > 30_000 ? RESTART_MIN_MS : delayMs;
        const next = Math.min(wait * 2, 30_000);
        const restart = () => {
          if (this.closed) return;
          this.startSlot(index, next).catch((e: unknown) => {
            this.log.error({ worker: index, err: (e as Error).message }, 'mediasoup worker did not restart; trying again');
            setTimeout(restart, next).unref();
          });
        };
        setTimeout(restart, wait).unref();
      });
    } catch (err) {
      worker.close();
      throw err;
    }
  }

  /** The live worker with the fewest viewers. */
  pickSlot(): Slot {
    let best: Slot | undefined;
    for (const slot of this.slots) if (slot && !slot.worker.died && (!best || slot.viewers < best.viewers)) best = slot;
    if (!best) throw new RelayError('WEBRTC_UNAVAILABLE', 'no mediasoup worker is running (restarting)');
    return best;
  }

  /** The router of `slot` that speaks the viewer's payload types (made on first use). */
  async viewerRouter(slot: Slot, offer: WhepOffer): Promise<types.Router> {
    const { key, mediaCodecs } = routerCodecsFor(offer);
    let router = slot.viewerRouters.get(key);
    if (!router) {
      if (slot.viewerRouters.size >= MAX_VIEWER_ROUTERS) throw new RelayError('WEBRTC_UNAVAILABLE', 'too many kinds of WebRTC offer on this worker');
      if (mediaCodecs.length === 0) throw new RelayError('CODEC_UNSUPPORTED', 'the offer can receive neither H.264 (packetization mode 1) nor Opus');
      router = slot.worker.createRouter({ mediaCodecs }).then((r) => {
        // mediasoup's Router hands out its capabilities object itself, and reads it when a producer
        // arrives (the piped ones, after this): renumbered here, its header extension ids and RTX payload
        // types are the ones its consumers write. Pinned by mediasoup-engine.test.ts.
        // An unpatched worker writes mediasoup's own ids whatever the answer says: then none are negotiated.
        r.rtpCapabilities.headerExtensions = this.patched ? extensionsWithOfferIds(offer, r.rtpCapabilities) : [];
        r.rtpCapabilities.codecs = codecsWithOfferRtx(offer, r.rtpCapabilities);
        return r;
      });
      slot.viewerRouters.set(key, router);
      router.catch(() => slot.viewerRouters.delete(key));
    }
    return router;
  }

  /** The process ids of the workers (tests kill one). */
  get workerPids(): number[] {
    return this.slots.flatMap((s) => (s ? [s.worker.pid] : []));
  }

  ingest(offerSdp: string): Promise<IngestSession> {
    return this.settings.ingest === 'werift' ? this.werift.ingest(offerSdp) : this.ingestOnWorker(offerSdp);
  }

  /**
   * A WHIP publisher on the least loaded worker: a WebRtcTransport with a producer per track (the
   * worker does SRTP, NACK, transport-cc feedback for the publisher's own estimate, and keyframe
   * requests), each read back through a consumer on a DirectTransport: its packets arrive here
   * decrypted and in order of arrival, for the depacketizer.
   */
  private async ingestOnWorker(offerSdp: string): Promise<IngestSession> {
    const offer = parseWhipOffer(offerSdp);
    const slot = this.pickSlot();
    const transport = await slot.router.createWebRtcTransport({ webRtcServer: slot.server, enableUdp: true, enableTcp: true, preferUdp: true });
    slot.viewers++; // a publisher weighs on its worker like a viewer, or more
    let direct: types.DirectTransport | undefined;
    const handlers = { video: [] as ((p: RtpPacketLike) => void)[], audio: [] as ((p: RtpPacketLike) => void)[] };
    const closed: (() => void)[] = [];
    const consumers: types.Consumer[] = [];
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      slot.viewers--;
      if (!transport.closed) transport.close();
      if (direct && !direct.closed) direct.close();
      for (const h of closed.splice(0)) h();
    };
    try {
      await transport.connect({ dtlsParameters: offer.dtls });
      direct = await slot.router.createDirectTransport();
      const tracks: AnswerTrack[] = [];
      for (const track of offer.tracks) {
        const producer = await transport.produce({ kind: track.kind, rtpParameters: track.rtpParameters }).catch((err: unknown) => {
          throw new RelayError('CODEC_UNSUPPORTED', `the offer's ${track.kind} cannot be taken: ${(err as Error).message}`);
        });
        const consumer = await direct.consume({ producerId: producer.id, rtpCapabilities: slot.router.rtpCapabilities });
        const out = handlers[track.kind];
        consumer.on('rtp', (data: Buffer) => {
          const packet = readRtpPacket(data);
          if (packet) for (const h of out) h(packet);
        });
        consumers.push(consumer);
        tracks.push({ mid: track.mid, kind: track.kind, rtpParameters: { ...track.rtpParameters, encodings: [] }, streamId: '', trackId: '' });
      }
      transport.on('dtlsstatechange', (state) => (state === 'failed' || state === 'closed') && end());
      // mediasoup's ICE consent check: a publisher gone silent for 30 s is gone.
      transport.on('icestatechange', (state) => state === 'disconnected' && end());
      transport.observer.on('close', end); // its worker died
      const video = consumers.find((c) => c.kind === 'video');
      return {
        answer: renderAnswer(offer, transport, tracks, 'recvonly'),
        onVideo: (h) => handlers.video.push(h),
        onAudio: (h) => handlers.audio.push(h),
        onClosed: (h) => void (ended ? h() : closed.push(h)),
        requestKeyframe: () => void video?.requestKeyFrame().catch(() => {}),
        close: async () => end(),
      };
    } catch (err) {
      end();
      throw err;
    }
  }

  async warmUp(): Promise<void> {
    await this.werift.warmUp();
  }

  broadcast(options: RtcBroadcastOptions): RtcBroadcast {
    if (this.settings.viewers === 'werift') return this.werift.broadcast(options);
    const broadcast = new MediasoupBroadcast(this, options, () => this.broadcasts.delete(broadcast));
    this.broadcasts.add(broadcast);
    return broadcast;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const b of [...this.broadcasts]) b.close();
    for (const slot of this.slots) slot?.worker.close();
    this.slots.length = 0;
  }
}

/** The first IPv4 address of this host that is not loopback (what a viewer on the network reaches), else loopback. */
function hostAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

/** `avc1.4d401f` -> `4d401f`. */
function profileLevelId(init: StreamInit): string {
  const match = /^avc1\.([0-9a-f]{6})$/i.exec(init.video?.codecString ?? '');
  return match ? match[1]!.toLowerCase() : '42e01f';
}

interface Producers {
  home: Slot;
  transport: types.DirectTransport;
  /** One video producer: a simulcast one with an encoding per layer when there are several. */
  video: types.Producer | undefined;
  audio: types.Producer | undefined;
  /** The codec parameters they were made for: a new publication with other ones makes new producers. */
  key: string;
  /** Viewers' router id -> the producers piped there. */
  piped: Map<string, Promise<PipedProducers>>;
}

/** A stream's producers as a viewers' router knows them. */
interface PipedProducers {
  video?: string;
  audio?: string;
}

/**
 * The broadcast's one clock for sender reports: RTP time of every layer and of the audio mapped to
 * wall-clock time through a single offset (all renditions share the source's media clock), so that
 * the worker lines up the layers' timestamps exactly when a viewer switches layer.
 */
class BroadcastClock {
  private offsetMs: number | undefined;

  /** NTP time (ms since the Unix epoch) of a media time in ms. */
  wallOf(mediaMs: number, wallMs: number): number {
    this.offsetMs ??= wallMs - mediaMs;
    return mediaMs + this.offsetMs;
  }
}

/** One RTP stream into a producer (a simulcast layer, or the audio): contiguous sequence numbers, and its sender reports. */
class ProducerInput {
  private seq = Math.floor(Math.random() * 0x10000);
  private packets = 0;
  private octets = 0;
  private lastTimestamp = 0;
  /** The media time (ms) of the last packet, from the timestamp unwrapped. */
  private lastMediaMs = 0;
  private lastWallMs = 0;
  private wraps = 0;

  constructor(
    readonly producer: types.Producer,
    readonly ssrc: number,
    private readonly payloadType: number,
    private readonly clockRate: number,
    private readonly clock: BroadcastClock,
  ) {}

  send(p: RtpOut): void {
    if (this.producer.closed) return;
    const packet = Buffer.allocUnsafe(RTP_HEADER_BYTES + p.payload.length);
    writeRtpHeader(packet, this.payloadType, p.marker, this.seq, p.timestamp, this.ssrc);
    p.payload.copy(packet, RTP_HEADER_BYTES);
    this.seq = (this.seq + 1) & 0xffff;
    if (this.packets > 0 && p.timestamp < this.lastTimestamp && this.lastTimestamp - p.timestamp > 0x80000000) this.wraps++;
    this.packets++;
    this.octets += p.payload.length;
    this.lastTimestamp = p.timestamp;
    this.lastMediaMs = ((this.wraps * 0x100000000 + p.timestamp) / this.clockRate) * 1000;
    this.lastWallMs = this.clock.wallOf(this.lastMediaMs, p.wallMs);
    this.producer.send(packet);
  }

  /** An RTCP sender report (RFC 3550 6.4.1), or nothing before the first packet. */
  senderReport(): Buffer | undefined {
    if (this.packets === 0) return undefined;
    const sr = Buffer.alloc(28);
    sr.writeUInt8(0x80, 0);
    sr.writeUInt8(200, 1);
    sr.writeUInt16BE(6, 2);
    sr.writeUInt32BE(this.ssrc, 4);
    const seconds = this.lastWallMs / 1000 + 2_208_988_800;
    sr.writeUInt32BE(Math.floor(seconds) >>> 0, 8);
    sr.writeUInt32BE(Math.floor((seconds % 1) * 2 ** 32) >>> 0, 12);
    sr.writeUInt32BE(this.lastTimestamp >>> 0, 16);
    sr.writeUInt32BE(this.packets >>> 0, 20);
    sr.writeUInt32BE(this.octets >>> 0, 24);
    return sr;
  }
}

/** A layer: its packetizer (which starts it at a keyframe), and its RTP stream once the producer exists. */
interface Layer {
  fanout: RtpFanout;
  video: ProducerInput | undefined;
}

interface Viewer {
  session: RtcViewerSession;
  connected: boolean;
  /** When it asked to watch (performance.now() ms): its time to first frame runs from here. */
  since: number;
}

/**
 * One stream in mediasoup: each layer's frames packetized once into an encoding of one video
 * producer (simulcast when there are several), the primary layer's Opus into an audio producer,
 * both on a DirectTransport; viewers' consumers on WebRtcTransports of any worker, each following
 * its own bandwidth estimate across the layers.
 */
class MediasoupBroadcast implements RtcBroadcast {
  private readonly layers: Layer[];
  private readonly clock = new BroadcastClock();
  private producers: Producers | undefined;
  private making: Promise<void> | undefined;
  private audio: ProducerInput | undefined;
  private readonly viewers = new Set<Viewer>();
  /** Viewers connected (what the bytes-sent figure multiplies by), and those of them not yet pictured. */
  private connectedViewers = 0;
  private readonly waiting = new Set<Viewer>();
  /** The producers' codec key, and the init it was read from (read again only when the init changes). */
  private keyOf: StreamInit | undefined;
  private key = '';
  /** Settled once the producers exist; made again when they go (a new publication, a dead worker). */
  private ready = deferred();
  private reportTimer: NodeJS.Timeout | undefined;
  private readonly keyframeAsks: KeyframeThrottle[];
  private closed = false;

  constructor(
    private readonly engine: MediasoupEngine,
    private readonly options: RtcBroadcastOptions,
    private readonly onClose: () => void,
  ) {
    this.keyframeAsks = Array.from(
      { length: options.layers },
      (_, layer) => new KeyframeThrottle(options.keyframeRequestMinMs, () => options.wantKeyframe?.(layer)),
    );
    this.layers = Array.from({ length: options.layers }, () => {
      // One sink per layer: its producer encoding. The fan-out packetizes each frame once and starts at a keyframe.
      const layer: Layer = { fanout: new RtpFanout({ keyframeRequestMinMs: options.keyframeRequestMinMs }), video: undefined };
      layer.fanout.add({ sendVideo: (p) => layer.video?.send(p), sendAudio: (p) => this.audio?.send(p) });
      return layer;
    });
  }

  push(frame: Frame, index: number): void {
    const layer = this.layers[index];
    if (this.closed || !layer) return;
    if (index === this.options.primaryLayer) {
      // The producers follow the primary rendition's codec parameters.
      if (frame.init !== this.keyOf) {
        this.keyOf = frame.init;
        this.key = `${profileLevelId(frame.init)}|${frame.init.video ? 'v' : ''}${frame.init.opus || frame.init.audio?.codec === 'opus' ? 'a' : ''}`;
      }
      const key = this.key;
      if (!this.producers || this.producers.key !== key || this.producers.transport.closed) {
        // No worker (one restarting) or a closed router: the next frame tries again.
        if (!this.making)
          this.making = this.makeProducers(key)
            .catch(() => undefined)
            .finally(() => (this.making = undefined));
        return; // frames before the producers exist are not sent (viewers start at a keyframe anyway)
      }
    }
    if (!this.producers) return;
    layer.fanout.push(frame);
    if (index !== this.options.primaryLayer) return;
    // What the worker sends on (about: each viewer gets the layer its bandwidth allows): the primary layer's
    // bytes to every connected viewer, and its keyframe as a waiting one's first picture.
    if (this.waiting.size > 0 && frame.codec === 'h264' && frame.keyframe) {
      const now = performance.now();
      for (const v of this.waiting) this.options.firstPicture?.(now - v.since);
      this.waiting.clear();
    }
    if (this.connectedViewers > 0) this.options.sent?.(frame.payload.length * this.connectedViewers);
  }

  private async makeProducers(key: string): Promise<void> {
    this.dropProducers();
    const [profile, tracks] = key.split('|') as [string, string];
    const home = this.engine.pickSlot();
    const transport = await home.router.createDirectTransport();
    const ssrc = () => (Math.random() * 0xffffffff) >>> 0;
    const cname = `relay-${ssrc().toString(16)}`;
    let video: types.Producer | undefined;
    let audio: types.Producer | undefined;
    try {
      if (tracks.includes('v')) {
        const ssrcs = this.layers.map(() => ssrc());
        video = await transport.produce({
          kind: 'video',
          rtpParameters: {
            codecs: [
              {
                mimeType: 'video/H264',
                payloadType: VIDEO_PT,
                clockRate: 90_000,
                parameters: { 'packetization-mode': 1, 'profile-level-id': profile, 'level-asymmetry-allowed': 1 },
                rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
              },
            ],
            // Lowest layer first: mediasoup's spatial layer i is encodings[i].
            encodings: ssrcs.map((s) => ({ ssrc: s, ...(ssrcs.length > 1 ? { scalabilityMode: 'L1T1' } : {}) })),
            rtcp: { cname },
          },
        });
        this.layers.forEach((layer, i) => (layer.video = new ProducerInput(video!, ssrcs[i]!, VIDEO_PT, 90_000, this.clock)));
      }
      if (tracks.includes('a')) {
        const s = ssrc();
        audio = await transport.produce({
          kind: 'audio',
          rtpParameters: {
            codecs: [{ mimeType: 'audio/opus', payloadType: AUDIO_PT, clockRate: 48_000, channels: 2, parameters: { useinbandfec: 1 } }],
            encodings: [{ ssrc: s }],
            rtcp: { cname },
          },
        });
        this.audio = new ProducerInput(audio, s, AUDIO_PT, 48_000, this.clock);
      }
    } catch (err) {
      transport.close();
      throw err;
    }
    if (this.closed) {
      transport.close();
      return;
    }
    // Viewers' PLI and FIR reach the producers' transport as RTCP, for the layer they watch: its source is asked for a keyframe.
    transport.on('rtcp', (rtcp) => {
      for (const requested of keyframeRequests(rtcp)) {
        const layer = this.layers.findIndex((l) => l.video?.ssrc === requested);
        if (layer >= 0) this.wantKeyframe(layer);
      }
    });
    this.producers = { home, transport, video, audio, key, piped: new Map() };
    this.reportTimer ??= setInterval(() => this.senderReports(), 1000).unref();
    this.ready.resolve();
  }

  /** Sender reports of every stream, each second: simulcast layer switches need them. */
  private senderReports(): void {
    const p = this.producers;
    if (!p || p.transport.closed) return;
    for (const input of [...this.layers.map((l) => l.video), this.audio]) {
      const sr = input?.senderReport();
      if (sr) p.transport.sendRtcp(sr);
    }
  }

  private wantKeyframe(layer: number): void {
    this.keyframeAsks[layer]?.request();
  }

  private dropProducers(): void {
    const p = this.producers;
    if (p) this.ready = deferred();
    this.producers = undefined;
    for (const layer of this.layers) layer.video = undefined;
    this.audio = undefined;
    p?.transport.close(); // its producers close, and with them every consumer: viewers reconnect
  }

  reset(layer: number): void {
    this.layers[layer]?.fanout.reset();
  }

  /** The producers on a viewers' router (their ids there): piped from their home router once. */
  private producersOn(router: types.Router, p: Producers): Promise<PipedProducers> {
    let piping = p.piped.get(router.id);
    if (!piping) {
      piping = (async () => {
        const out: PipedProducers = {};
        for (const kind of ['video', 'audio'] as const) {
          const producer = p[kind];
          if (!producer) continue;
          // New ids: the viewers' router is in the same worker as the home one when there is one worker.
          const { pipeProducer } = await p.home.router.pipeToRouter({ producerId: producer.id, router, keepId: false });
          out[kind] = pipeProducer?.id;
        }
        return out;
      })();
      p.piped.set(router.id, piping);
      piping.catch(() => p.piped.delete(router.id));
    }
    return piping;
  }

  async join(offerSdp: string, since: number): Promise<RtcViewerSession> {
    const offer = parseWhepOffer(offerSdp);
    if (this.closed) throw new RelayError('NO_EDGE_AVAILABLE', 'the rendition closed');
    if (this.producers?.transport.closed) this.dropProducers(); // their worker died: the next frames make them again
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      this.ready.promise.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), FIRST_FRAME_WAIT_MS))),
    ]);
    clearTimeout(timer);
    const p = this.producers;
    if (!ready || !p) throw new RelayError('STREAM_OFFLINE', 'no frame of the stream arrived');
    const slot = this.engine.pickSlot();
    const router = await this.engine.viewerRouter(slot, offer);
    const piped = await this.producersOn(router, p).catch((err: unknown) => {
      throw new RelayError('CODEC_UNSUPPORTED', `the offer cannot receive this rendition's codecs: ${(err as Error).message}`);
    });
    const { rtpCapabilities } = offer;
    const top = this.options.topLayerKbps;
    const transport = await router.createWebRtcTransport({
      webRtcServer: slot.server,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      // A viewer starts on the top layer; its estimate then follows its link, down at once, up through the probes.
      initialAvailableOutgoingBitrate: top ? Math.round(top * 1000 * START_OVER_TOP) : DEFAULT_START_BPS,
    });
    if (top) await transport.setMaxOutgoingBitrate(Math.round(top * 1000 * MAX_OVER_TOP));
    slot.viewers++;
    const connected: (() => void)[] = [];
    const closed: (() => void)[] = [];
    const viewer: Viewer = { session: undefined as unknown as RtcViewerSession, connected: false, since };
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      slot.viewers--;
      this.viewers.delete(viewer);
      this.waiting.delete(viewer);
      if (viewer.connected) this.connectedViewers--;
      if (!transport.closed) transport.close();
      for (const h of closed.splice(0)) h();
    };
    try {
      await transport.connect({ dtlsParameters: offer.dtls });
      const tracks: AnswerTrack[] = [];
      const streamId = `relay-${transport.id.slice(0, 8)}`;
      for (const kind of ['video', 'audio'] as const) {
        const producerId = piped[kind];
        const section = offer.sections.find((s) => s.kind === kind && s.receives);
        if (!producerId || !section || !router.canConsume({ producerId, rtpCapabilities })) continue;
        const consumer = await transport.consume({ producerId, rtpCapabilities, mid: section.mid, paused: false });
        consumer.on('producerclose', end);
        tracks.push({ mid: section.mid, kind, rtpParameters: consumer.rtpParameters, streamId, trackId: `${kind}-${consumer.id.slice(0, 8)}` });
      }
      if (tracks.length === 0) throw new RelayError('CODEC_UNSUPPORTED', 'the offer can receive none of the codecs this rendition carries');
      const answer = renderAnswer(offer, transport, tracks);
      transport.on('dtlsstatechange', (state) => {
        if (state === 'connected') {
          if (ended || viewer.connected) return;
          viewer.connected = true;
          this.connectedViewers++;
          this.waiting.add(viewer);
          // Its first picture is a keyframe: the sources that make them on demand (a WHIP publisher) are asked
          // now that it can receive one (asked at the offer, it came before DTLS was up and was lost).
          for (let layer = 0; layer < this.layers.length; layer++) this.wantKeyframe(layer);
          for (const h of connected.splice(0)) h();
        } else if (state === 'failed' || state === 'closed') end();
      });
      // mediasoup's ICE consent check: a viewer gone silent for 30 s is gone.
      transport.on('icestatechange', (state) => state === 'disconnected' && end());
      transport.observer.on('close', end); // the router or its worker closed
      const session: RtcViewerSession = {
        answer,
        onConnected: (h) => void (viewer.connected ? h() : connected.push(h)),
        onClosed: (h) => void (ended ? h() : closed.push(h)),
        close: async () => end(),
      };
      viewer.session = session;
      this.viewers.add(viewer);
      return session;
    } catch (err) {
      end();
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reportTimer);
    for (const ask of this.keyframeAsks) ask.close();
    for (const v of [...this.viewers]) void v.session.close();
    this.dropProducers();
    this.onClose();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The media SSRCs an RTCP compound packet asks keyframes of: PLI (PSFB, FMT 1) and FIR (PSFB, FMT 4, one per FCI entry). */
export function keyframeRequests(rtcp: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 12 <= rtcp.length;) {
    const fmt = rtcp[at]! & 0x1f;
    const type = rtcp[at + 1]!;
    const end = at + (rtcp.readUInt16BE(at + 2) + 1) * 4;
    if (type === 206 && fmt === 1) out.push(rtcp.readUInt32BE(at + 8));
    if (type === 206 && fmt === 4) for (let fci = at + 12; fci + 8 <= Math.min(end, rtcp.length); fci += 8) out.push(rtcp.readUInt32BE(fci));
    at = end;
  }
  return out;
}
