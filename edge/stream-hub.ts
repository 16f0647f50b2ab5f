import type { RelayConfig } from '../server/core/config/schema.ts';
import { FrameDecoder, readToken } from '../server/core/bus/frame-codec.ts';
import type { NatsConnection } from '../server/core/bus/nats-connection.ts';
import { SOURCE_RENDITION, StreamSubjects } from '../server/core/bus/subjects.ts';
import { requestKeyframe } from '../server/core/bus/keyframe-requests.ts';
import type { Logger } from '../server/core/log.ts';
import type { Frame, StreamInit } from '../server/core/media/frame.ts';
import { StreamFeed } from './feed/stream-feed.ts';
import { GopCache, type WireFragment } from './gop-cache.ts';
import type { EdgeMetrics } from './edge-metrics.ts';
import { Fmp4Muxer, type Fragment } from '../server/core/media/mp4/fmp4-muxer.ts';
import { AUDIO_TRACK_ID, buildInitSegment, mimeType, VIDEO_TRACK_ID, VIDEO_TIMESCALE } from '../server/core/media/mp4/init-segment.ts';
import { decide, type ViewerQueueLimits } from './viewer/viewer-queue.ts';
import { frameBinary, frameBinaryInPlace, WS_MAX_HEADER } from './viewer/ws-frame.ts';
import { CloseCode, type ControlMessage, type Viewer } from './viewer/ws-viewer.ts';
import { RtpFanout, type RtpSink } from './webrtc/rtp-fanout.ts';

export type HubState = 'connecting' | 'offline' | 'live' | 'ended';

/** Audio waits this long for a video frame to ride with before it goes out on its own. */
const AUDIO_FLUSH_MS = 120;
/** A live stream with no frame for this long is shown offline (its origin died without an end marker). */
const SILENT_OFFLINE_MS = 5000;

/**
 * Everything one edge does for one stream: one bus consumer, one muxer, one GOP
 * cache, and the fan-out of each fragment to every viewer from one buffer.
 */
export class StreamHub {
  state: HubState = 'connecting';
  /** WebSocket (fMP4) viewers. */
  readonly viewers = new Set<Viewer>();
  /** WebRTC (WHEP) viewers of this rendition, fed as RTP. */
  readonly rtc: RtpFanout;
  private readonly decoder = new FrameDecoder();
  private readonly gop: GopCache;
  private readonly feed: StreamFeed;
  private readonly limits: ViewerQueueLimits;
  private muxer: Fmp4Muxer | undefined;
  private initWire: { control: ControlMessage; segment: Buffer } | undefined;
  /** Newest fencing token seen: frames from an older publication are dropped. */
  private token = -Infinity;
  private tokenSeenAt = 0;
  private readonly forgetTokenAfterMs: number;
  private expectedCounter: number | undefined;
  /** After a gap (lost frames, consumer restart) nothing goes out until the next keyframe. */
  private needKeyframe = true;
  private lastVideoAt = 0;
  private lastFrameAt = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly housekeeping: NodeJS.Timeout;
  readonly stats = { frames: 0, fragments: 0, gaps: 0, staleDropped: 0, badMessages: 0, duplicates: 0 };

  constructor(
    readonly stream: string,
    readonly rendition: string,
    nc: NatsConnection,
    config: RelayConfig,
    private readonly metrics: EdgeMetrics,
    private readonly log: Logger,
  ) {
    this.gop = new GopCache(config.edge.gopCacheMaxBytes);
    // The source rendition of a WHIP stream makes keyframes on demand: ask its origin (it throttles).
    const wantKeyframe = rendition === SOURCE_RENDITION ? () => requestKeyframe(nc, config.bus.subjectPrefix, stream) : undefined;
    this.rtc = new RtpFanout({
      keyframeRequestMinMs: config.webrtc.keyframeRequestMinMs,
      wantKeyframe,
      firstPicture: (ms) => metrics.timeToFirstFrame.webrtc.observe(ms / 1000),
      sent: (bytes) => metrics.bytesOut.webrtc.inc(bytes),
    });
    this.forgetTokenAfterMs = config.cluster.leaseTtlMs + 2000;
    this.limits = { skipBytes: config.edge.viewerSkipBytes, maxBytes: config.edge.viewerMaxBytes, maxLagMs: config.edge.viewerMaxLagMs };
    this.feed = new StreamFeed(
      nc,
      {
        jsStream: config.bus.streamName,
        subjects: new StreamSubjects(config.bus.subjectPrefix, stream, rendition),
        maxMessages: config.edge.consumerMaxMessages,
        watchdogIntervalMs: config.edge.watchdogIntervalMs,
        log,
      },
      (data) => this.message(data),
      (reason) => {
        metrics.bus.restarts.inc();
        this.decoder.reset();
        log.info({ reason }, 'stream consumer recreated');
      },
    );
    this.timer = setInterval(() => this.flushIdleAudio(), AUDIO_FLUSH_MS / 2);
    this.timer.unref();
    this.housekeeping = setInterval(() => this.housekeep(), 1000);
    this.housekeeping.unref();
  }

  async start(): Promise<void> {
    const start = await this.feed.start();
    if (this.state === 'connecting' && start.kind === 'new') this.setState('offline');
  }

  /** Messages on the bus for this hub's consumer, not yet delivered. */
  get pending(): number {
    return this.feed.pending;
  }

  get feedStats() {
    return this.feed.stats;
  }

  /**
   * A new viewer gets the init and the current GOP, so it starts on a keyframe at
   * once. `fromNextKeyframe`: no GOP, it starts at the next keyframe (a player
   * switching renditions already has the frames up to there).
   */
  add(viewer: Viewer, fromNextKeyframe = false): void {
    // "Next" in time: a consumer just started replays its last GOP, and those keyframes are in the past.
    if (fromNextKeyframe) viewer.startAfter = performance.timeOrigin + performance.now();
    this.viewers.add(viewer);
    this.metrics.viewers.ws.inc();
    viewer.control({ type: 'status', state: this.state, stream: this.stream, rendition: this.rendition });
    if (this.state === 'live' && this.initWire) this.sendInit(viewer, fromNextKeyframe);
  }

  remove(viewer: Viewer): void {
    if (this.viewers.delete(viewer)) this.metrics.viewers.ws.dec();
  }

  /** A WebRTC viewer whose connection is up; it asked to watch at `since` (performance.now() ms). */
  addRtc(sink: RtpSink, since?: number): void {
    this.rtc.add(sink, since);
    this.metrics.viewers.webrtc.inc();
  }

  removeRtc(sink: RtpSink): void {
    if (this.rtc.viewers.has(sink)) this.metrics.viewers.webrtc.dec();
    this.rtc.remove(sink);
  }

  /** Viewers of every kind: the hub lingers when there are none. */
  get viewerCount(): number {
    return this.viewers.size + this.rtc.viewers.size;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.housekeeping);
    for (const v of this.viewers) this.remove(v);
    for (const sink of [...this.rtc.viewers.keys()]) this.removeRtc(sink);
    await this.feed.close();
  }

  private sendInit(viewer: Viewer, fromNextKeyframe = false): void {
    viewer.control(this.initWire!.control);
    viewer.writeWire(this.initWire!.segment);
    viewer.started = false;
    const cached = this.gop.current;
    if (cached.length === 0 || fromNextKeyframe) return;
    this.started(viewer);
    let bytes = 0;
    for (const f of cached) {
      viewer.writeWire(f.bytes);
      bytes += f.bytes.length;
    }
    this.metrics.bytesOut.ws.inc(bytes);
  }

  private setState(state: HubState): void {
    if (this.state === state) return;
    this.state = state;
    for (const v of this.viewers) v.control({ type: 'status', state, stream: this.stream, rendition: this.rendition });
  }

  private message(data: Uint8Array): void {
    const token = readToken(data);
    if (token !== undefined && token < this.token) {
      // An older publication (an ex-owner still publishing): fenced off before it can
      // touch any state. Unless the newest token has been silent for longer than a
      // lease lives: its owner has stopped for sure, and tokens started over (a lease
      // bucket rebuilt under running edges).
      if (performance.now() - this.tokenSeenAt < this.forgetTokenAfterMs) {
        this.stats.staleDropped++;
        return;
      }
      this.log.warn({ token: this.token, now: token }, 'the newest publication has been silent past a lease lifetime; accepting a lower token');
      this.token = -Infinity;
    }
    if (token === this.token) this.tokenSeenAt = performance.now();
    let msg;
    try {
      msg = this.decoder.decode(data);
    } catch (err) {
      this.stats.badMessages++;
      this.needKeyframe = true;
      this.log.warn({ code: 'BUS_MESSAGE_INVALID', err: (err as Error).message }, 'unreadable message on the bus; waiting for the next keyframe');
      return;
    }
    if (msg.kind === 'partial') return;
    const { stamp } = msg;
    if (stamp.token > this.token) {
      // A new publication: its clock starts over, so viewers get a new init even if the codecs match.
      this.token = stamp.token;
      this.tokenSeenAt = performance.now();
      this.expectedCounter = undefined;
      this.needKeyframe = true;
      this.muxer = undefined;
      this.rtc.reset();
    }
    // A frame sent again after NATS came back, stored the first time after all: seen already.
    const behind = this.expectedCounter === undefined ? 0 : (this.expectedCounter - stamp.counter) >>> 0;
    if (behind >= 1 && behind < 0x80000000) {
      this.stats.duplicates++;
      return;
    }
    if (this.expectedCounter !== undefined && stamp.counter !== this.expectedCounter) {
      this.stats.gaps++;
      this.metrics.gaps.inc();
      this.needKeyframe = true;
      this.log.warn({ expected: this.expectedCounter, got: stamp.counter }, 'frames missing on the bus; resuming at the next keyframe');
    }
    this.expectedCounter = (stamp.counter + 1) >>> 0;
    if (msg.kind === 'end') {
      this.ended();
      return;
    }
    this.frame(msg.frame);
  }

  private ended(): void {
    this.muxer = undefined;
    this.initWire = undefined;
    this.gop.clear();
    this.rtc.reset();
    this.needKeyframe = true;
    this.setState('ended');
  }

  private frame(frame: Frame): void {
    this.stats.frames++;
    this.lastFrameAt = performance.now();
    const isKey = frame.track === 'video' && frame.keyframe;
    if (this.needKeyframe) {
      if (!isKey) return;
      this.needKeyframe = false;
    }
    if (isKey && (!this.muxer || this.muxer.init !== frame.init)) this.newInit(frame.init);
    this.rtc.push(frame);
    if (!this.muxer) return;
    if (this.state !== 'live') this.setState('live'); // frames again after a silence
    if (frame.track === 'video') this.lastVideoAt = performance.now();
    const fragment = this.muxer.push(frame);
    if (!fragment) return;
    this.fanout(toWire(fragment));
  }

  private newInit(init: StreamInit): void {
    try {
      this.muxer = new Fmp4Muxer(init, { headroom: WS_MAX_HEADER });
      const segment = buildInitSegment(init);
      this.initWire = {
        control: {
          type: 'init',
          mime: mimeType(init),
          width: init.video?.width,
          height: init.video?.height,
          timescales: { [VIDEO_TRACK_ID]: VIDEO_TIMESCALE, [AUDIO_TRACK_ID]: init.audio?.sampleRate ?? 48000 },
          metadata: init.metadata,
        },
        segment: frameBinary(segment),
      };
    } catch (err) {
      this.muxer = undefined;
      this.initWire = undefined;
      this.log.warn({ err: (err as Error).message }, 'cannot mux this stream for MSE');
      return;
    }
    this.gop.clear();
    this.setState('live');
    for (const v of this.viewers) this.sendInit(v);
  }

  private flushIdleAudio(): void {
    if (!this.muxer || this.muxer.pendingAudioFrames === 0 || performance.now() - this.lastVideoAt < AUDIO_FLUSH_MS) return;
    const fragment = this.muxer.flushAudio();
    if (fragment) this.fanout(toWire(fragment));
  }

  /** Once a second: a silent live stream is shown offline; a viewer stuck behind is dropped even when no fragment comes to decide it. */
  private housekeep(): void {
    const now = performance.now();
    if (this.state === 'live' && now - this.lastFrameAt > SILENT_OFFLINE_MS) this.setState('offline');
    for (const viewer of this.viewers) {
      if (viewer.queue.skipping && now - viewer.queue.skippingSince > this.limits.maxLagMs) this.dropSlow(viewer);
    }
  }

  private dropSlow(viewer: Viewer): void {
    this.metrics.viewersDisconnected.inc();
    viewer.control({ type: 'error', code: 'VIEWER_TOO_SLOW', message: 'the connection stayed too far behind live' });
    viewer.close(CloseCode.TOO_SLOW, 'VIEWER_TOO_SLOW');
    this.remove(viewer);
  }

  /** A viewer gets its first keyframe: time to first frame, once per connection. */
  private started(viewer: Viewer): void {
    viewer.started = true;
    if (viewer.firstFrameAt === 0) {
      viewer.firstFrameAt = performance.now();
      this.metrics.timeToFirstFrame.ws.observe((viewer.firstFrameAt - viewer.connectedAt) / 1000);
    }
  }

  /** The per-fragment hot path: one shared buffer, a policy decision per viewer, no allocation per viewer. */
  private fanout(wire: WireFragment): void {
    this.stats.fragments++;
    this.gop.push(wire);
    const now = performance.now();
    let sent = 0;
    for (const viewer of this.viewers) {
      if (!viewer.started) {
        if (!wire.keyframe || wire.receivedAt < viewer.startAfter) continue;
        this.started(viewer);
      }
      switch (decide(this.limits, viewer.queue, viewer.queued, wire.keyframe, now)) {
        case 'send':
          viewer.writeWire(wire.bytes);
          sent++;
          break;
        case 'fall-behind':
          this.metrics.viewersSkipped.inc();
          break;
        case 'skip':
          break;
        case 'disconnect':
          this.dropSlow(viewer);
          break;
      }
    }
    if (sent > 0) {
      this.metrics.bytesOut.ws.inc(sent * wire.bytes.length);
      this.metrics.relayLatency.observe((performance.timeOrigin + performance.now() - wire.receivedAt) / 1000);
    }
  }
}

/** A muxed fragment as it goes on the wire: the WebSocket header written in its headroom, once for all viewers. */
function toWire(fragment: Fragment): WireFragment {
  return { bytes: frameBinaryInPlace(fragment.buffer, fragment.offset), keyframe: fragment.keyframe, receivedAt: fragment.receivedAt };
}
