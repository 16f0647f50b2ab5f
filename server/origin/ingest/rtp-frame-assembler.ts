import { TICKS_PER_MS, TICKS_PER_SECOND, type Frame, type StreamInit } from '../../core/media/frame.ts';
import { OPUS_SAMPLE_RATE, opusConfig } from '../../core/media/opus.ts';
import { H264Depacketizer, type RtpPacketLike } from '../../core/media/rtp/h264-depacketizer.ts';

/** A track's RTP clock on the stream's timeline: 32-bit timestamps unwrapped, anchored at the first packet's arrival. */
class RtpClock {
  private last: number | undefined;
  private unwrapped = 0;
  private anchorTicks = 0;

  constructor(private readonly rate: number) {}

  /** 90 kHz ticks on the stream's timeline for an RTP timestamp that arrived at `arrivalTicks`. */
  ticks(rtpTimestamp: number, arrivalTicks: number): number {
    if (this.last === undefined) {
      this.anchorTicks = arrivalTicks;
      this.unwrapped = 0;
    } else {
      let delta = (rtpTimestamp - this.last) | 0; // signed 32-bit difference: wraps and small reorders
      if (delta < -this.rate * 10) delta = 0; // a jump back of over 10 s: a restarted sender
      this.unwrapped += delta;
    }
    this.last = rtpTimestamp;
    return this.anchorTicks + Math.round((this.unwrapped * TICKS_PER_SECOND) / this.rate);
  }
}

/**
 * WebRTC media (RTP) -> the relay's frames. Pure apart from the clock it is given.
 * Video goes through the H.264 depacketizer; each Opus packet is one audio frame.
 * Each track's timeline starts at its first packet's arrival, relative to the
 * stream's first packet, so audio and video line up to within network jitter.
 * WebRTC senders make no B-frames: decode time is presentation time.
 */
export class RtpFrameAssembler {
  private readonly depacketizer = new H264Depacketizer();
  private readonly videoClock = new RtpClock(TICKS_PER_SECOND);
  private readonly audioClock = new RtpClock(OPUS_SAMPLE_RATE);
  private startMs: number | undefined;
  private init: StreamInit | undefined;
  /** The depacketizer's configuration the init was made from. */
  private videoFrom: unknown;
  private readonly audioConfig = opusConfig(2);

  constructor(
    private readonly tracks: { video: boolean; audio: boolean },
    private readonly metadata: StreamInit['metadata'] = {},
  ) {}

  /** The depacketizer lost data or has not started: the publisher should send a keyframe. */
  get needKeyframe(): boolean {
    return this.depacketizer.needKeyframe;
  }

  get videoStats() {
    return this.depacketizer.stats;
  }

  video(packet: RtpPacketLike, arrivalMs: number): Frame[] {
    const arrival = this.arrivalTicks(arrivalMs);
    const out: Frame[] = [];
    for (const au of this.depacketizer.push(packet)) {
      if (!this.init || this.videoFrom !== au.config) {
        this.videoFrom = au.config;
        this.init = { video: { ...au.config, bFrames: false }, audio: this.tracks.audio ? this.audioConfig : undefined, metadata: this.metadata };
      }
      const dts = this.videoClock.ticks(au.timestamp, arrival);
      out.push({ track: 'video', codec: 'h264', dts, cto: 0, keyframe: au.keyframe, payload: au.payload, receivedAt: arrivalMs, init: this.init });
    }
    return out;
  }

  /** An Opus packet; none before the first video keyframe when the stream has video (a decoder starts there). */
  audio(packet: RtpPacketLike, arrivalMs: number): Frame | undefined {
    const arrival = this.arrivalTicks(arrivalMs);
    const dts = this.audioClock.ticks(packet.timestamp, arrival);
    if (packet.payload.length === 0) return undefined;
    if (!this.init) {
      if (this.tracks.video) return undefined;
      this.init = { audio: this.audioConfig, metadata: this.metadata };
    }
    return { track: 'audio', codec: 'opus', dts, cto: 0, keyframe: true, payload: packet.payload, receivedAt: arrivalMs, init: this.init };
  }

  private arrivalTicks(arrivalMs: number): number {
    this.startMs ??= arrivalMs;
    return Math.round((arrivalMs - this.startMs) * TICKS_PER_MS);
  }
}
