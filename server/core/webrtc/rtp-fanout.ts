import type { Frame, StreamInit } from '../media/frame.ts';
import { parseAvcC } from '../media/h264.ts';
import { packetizeH264 } from '../media/rtp/h264-packetizer.ts';
import type { RtpOut } from './webrtc-engine.ts';

/** What the fan-out needs of a WebRTC viewer's session. */
export interface RtpSink {
  sendVideo(packet: RtpOut): void;
  sendAudio(packet: RtpOut): void;
}

interface RtcViewer {
  sink: RtpSink;
  /** Has had a keyframe: delta frames may follow. */
  started: boolean;
  /** Has been sent a picture at all (cached or live). */
  pictured: boolean;
  /** When the viewer asked to watch (performance.now() ms): time to first frame runs from here. */
  since: number;
  lastKeyframeRequest: number;
}

export interface RtpFanoutOptions {
  keyframeRequestMinMs: number;
  now?: () => number;
  /** Called when a viewer is left waiting for a keyframe (joining, or after a PLI); a source that can make one on demand (WHIP) is asked upstream. */
  wantKeyframe?: () => void;
  /** A viewer's first picture went out: ms since it asked to watch. */
  firstPicture?: (ms: number) => void;
  /** Media payload bytes sent to viewers, once per frame for all of them. */
  sent?: (bytes: number) => void;
}

/** Opus's RTP clock (RFC 7587) against the frame clock (90 kHz). */
const OPUS_PER_TICK = 48_000 / 90_000;

/**
 * One WebRTC rendition of one stream, fanned out as RTP: each frame is packetized
 * once (only while someone watches) and the same packets go to every viewer. A new viewer gets the cached
 * keyframe at once, stamped as the newest picture (so its jitter buffer does not
 * start behind live), then nothing of the video until the next live keyframe:
 * what follows the cached keyframe refers to pictures it does not have. A viewer's
 * keyframe request (PLI) is answered the same way, throttled. Audio flows at once.
 */
export class RtpFanout {
  readonly viewers = new Map<RtpSink, RtcViewer>();
  private videoSeq = Math.floor(Math.random() * 0x10000);
  private audioSeq = Math.floor(Math.random() * 0x10000);
  /** The last keyframe, for viewers that join or lose a picture. */
  private keyframe: Frame | undefined;
  private lastVideoTs: number | undefined;
  private lastVideoWallMs = 0;
  /**
   * Wall clock minus media clock (ms): the smallest ingest delay seen since the last
   * reset, so that one late frame does not move the mapping sender reports carry.
   */
  private clockOffsetMs: number | undefined;
  private lengthSize = 4;
  private parameterSets: Buffer[] = [];
  private configOf: StreamInit | undefined;
  readonly stats = { frames: 0, packets: 0, keyframesFromCache: 0, refused: 0 };

  constructor(private readonly options: RtpFanoutOptions) {}

  private now(): number {
    return this.options.now?.() ?? performance.now();
  }

  /** A viewer whose connection is up (it asked at `since`): the cached keyframe, if any, and audio from now on. */
  add(sink: RtpSink, since = this.now()): void {
    const viewer: RtcViewer = { sink, started: false, pictured: false, since, lastKeyframeRequest: -Infinity };
    this.viewers.set(sink, viewer);
    this.fromCache(viewer);
  }

  remove(sink: RtpSink): void {
    this.viewers.delete(sink);
  }

  /** The viewer lost a picture (PLI): the cached keyframe again, at most once per `keyframeRequestMinMs`. */
  keyframeRequested(sink: RtpSink): void {
    const viewer = this.viewers.get(sink);
    if (!viewer) return;
    const now = this.now();
    if (now - viewer.lastKeyframeRequest < this.options.keyframeRequestMinMs) return;
    viewer.lastKeyframeRequest = now;
    this.fromCache(viewer);
  }

  /** A new publication or the stream's end: nothing cached is valid any more. */
  reset(): void {
    this.keyframe = undefined;
    this.lastVideoTs = undefined;
    this.clockOffsetMs = undefined;
    for (const v of this.viewers.values()) v.started = false;
  }

  /** One frame of the WebRTC rendition: H.264 without B-frames, or Opus. Others are not for WebRTC. */
  push(frame: Frame): void {
    if (frame.codec === 'h264') this.video(frame);
    else if (frame.codec === 'opus') this.audio(frame);
  }

  /** The wall-clock time a frame's presentation time stands for (both tracks share the 90 kHz frame clock). */
  private wallOf(frame: Frame): number {
    const mediaMs = (frame.dts + frame.cto) / 90;
    const offset = frame.receivedAt - mediaMs;
    if (this.clockOffsetMs === undefined || offset < this.clockOffsetMs) this.clockOffsetMs = offset;
    return mediaMs + this.clockOffsetMs;
  }

  private video(frame: Frame): void {
    const timestamp = (frame.dts + frame.cto) >>> 0;
    const wallMs = this.wallOf(frame);
    this.lastVideoTs = timestamp;
    this.lastVideoWallMs = wallMs;
    if (frame.keyframe) this.keyframe = frame;
    if (this.viewers.size === 0) return;
    const payloads = this.packetize(frame);
    if (!payloads) return;
    this.stats.frames++;
    const packets = new Array<RtpOut>(payloads.length);
    for (let i = 0; i < payloads.length; i++) {
      packets[i] = { sequenceNumber: this.videoSeq, timestamp, marker: i === payloads.length - 1, payload: payloads[i]!, wallMs };
      this.videoSeq = (this.videoSeq + 1) & 0xffff;
    }
    this.stats.packets += packets.length;
    let receivers = 0;
    for (const viewer of this.viewers.values()) {
      if (!viewer.started) {
        if (!frame.keyframe) continue;
        viewer.started = true;
        if (!viewer.pictured) this.pictured(viewer);
      }
      for (const p of packets) viewer.sink.sendVideo(p);
      receivers++;
    }
    if (receivers > 0 && this.options.sent) {
      let bytes = 0;
      for (const p of payloads) bytes += p.length;
      this.options.sent(bytes * receivers);
    }
  }

  private pictured(viewer: RtcViewer): void {
    viewer.pictured = true;
    this.options.firstPicture?.(this.now() - viewer.since);
  }

  /** RTP payloads of a frame (parameter sets before a keyframe), or undefined for one that cannot be read. */
  private packetize(frame: Frame): Buffer[] | undefined {
    if (frame.init !== this.configOf && frame.init.video) {
      const avc = parseAvcC(frame.init.video.config);
      this.lengthSize = avc.lengthSize;
      this.parameterSets = [...avc.sps, ...avc.pps];
      this.configOf = frame.init;
    }
    try {
      const payloads = packetizeH264(frame.payload, this.lengthSize, frame.keyframe ? this.parameterSets : []);
      return payloads.length > 0 ? payloads : undefined;
    } catch {
      this.stats.refused++;
      if (frame === this.keyframe) this.keyframe = undefined;
      return undefined;
    }
  }

  private audio(frame: Frame): void {
    const packet: RtpOut = {
      sequenceNumber: this.audioSeq,
      timestamp: Math.round((frame.dts + frame.cto) * OPUS_PER_TICK) >>> 0,
      marker: false,
      payload: frame.payload,
      wallMs: this.wallOf(frame),
    };
    this.audioSeq = (this.audioSeq + 1) & 0xffff;
    this.stats.packets++;
    for (const viewer of this.viewers.values()) viewer.sink.sendAudio(packet);
    if (this.viewers.size > 0) this.options.sent?.(frame.payload.length * this.viewers.size);
  }

  /**
   * The cached keyframe, packetized for this viewer alone and stamped one tick after
   * the newest picture (every live picture after it is later still); the viewer then
   * waits for the next live keyframe. Its sequence numbers are its own: the engine
   * keeps each viewer's contiguous.
   */
  private fromCache(viewer: RtcViewer): void {
    viewer.started = false;
    this.options.wantKeyframe?.();
    if (!this.keyframe || this.lastVideoTs === undefined) return;
    const payloads = this.packetize(this.keyframe);
    if (!payloads) return;
    this.stats.keyframesFromCache++;
    const timestamp = (this.lastVideoTs + 1) >>> 0;
    const wallMs = this.lastVideoWallMs;
    let bytes = 0;
    payloads.forEach((payload, i) => {
      viewer.sink.sendVideo({ sequenceNumber: i, timestamp, marker: i === payloads.length - 1, payload, wallMs });
      bytes += payload.length;
    });
    this.options.sent?.(bytes);
    if (!viewer.pictured) this.pictured(viewer);
  }
}
