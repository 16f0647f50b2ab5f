import { RelayError } from '../../errors.ts';
import { AAC_FRAME_SAMPLES } from '../aac.ts';
import { opusPacketSamples } from '../opus.ts';
import { TICKS_PER_SECOND, type Frame, type StreamInit } from '../frame.ts';
import { AUDIO_TRACK_ID, VIDEO_TRACK_ID } from './init-segment.ts';

/** A muxed `[prft] moof mdat`, inside a buffer with free room in front of it. */
export interface Fragment {
  /** The allocation: `offset` free bytes (for a transport header), then the fragment. */
  buffer: Buffer;
  offset: number;
  /** Starts with a video keyframe (or is audio-only): a viewer may start here. */
  keyframe: boolean;
  /** Origin ingest wall-clock time (ms) of the frame that closed this fragment. */
  receivedAt: number;
  /** Decode time of its first sample, 90 kHz ticks: the video frame's, or (audio only) the first audio frame's. */
  time: number;
}

export function fragmentBytes(f: Fragment): Buffer {
  return f.buffer.subarray(f.offset);
}

const NTP_EPOCH_OFFSET_S = 2_208_988_800;
const SAMPLE_FLAGS_SYNC = 0x02000000; // sample_depends_on = 2 (an I picture)
const SAMPLE_FLAGS_NON_SYNC = 0x01010000; // depends_on = 1, is_non_sync_sample
/** Audio-only streams: samples per fragment (about 43 ms at 48 kHz). */
const AUDIO_ONLY_SAMPLES_PER_FRAGMENT = 2;

export interface MuxerOptions {
  /** Bytes left free before each fragment (a WebSocket header goes there). */
  headroom?: number;
  /** Write a `prft` box (ingest wall-clock time) before each `moof`. */
  producerReferenceTime?: boolean;
}

interface PendingAudio {
  payload: Buffer;
  receivedAt: number;
  /** Duration in samples: 1024 per AAC frame; an Opus packet says its own (TOC byte). */
  samples: number;
}

/**
 * Muxes frames into live fMP4 fragments: one fragment per video frame, carrying
 * the audio frames that arrived since the previous one. Pure: frames in, bytes out.
 *
 * A video sample's duration is not known when its fragment leaves, so the last
 * decode-time gap stands in; `tfdt` is absolute, so the estimate never drifts.
 * Audio keeps a sample clock (+1024 per AAC frame) and resyncs only on real gaps.
 */
export class Fmp4Muxer {
  private sequence = 0;
  private lastVideoDts: number | undefined;
  private videoDuration: number;
  private audioClock: number | undefined;
  private pendingAudio: PendingAudio[] = [];
  private pendingAudioStart = 0;
  private pendingAudioSamples = 0;
  private readonly headroom: number;
  private readonly prft: boolean;
  private readonly audioRate: number;

  constructor(
    readonly init: StreamInit,
    options: MuxerOptions = {},
  ) {
    if (init.audio && init.audio.codec !== 'aac' && init.audio.codec !== 'opus')
      throw new RelayError('CODEC_UNSUPPORTED', `audio codec ${init.audio.codec} in MP4`);
    this.headroom = options.headroom ?? 0;
    this.prft = options.producerReferenceTime ?? true;
    this.audioRate = init.audio?.sampleRate ?? 48000;
    const fps = typeof init.metadata.framerate === 'number' && init.metadata.framerate > 0 ? init.metadata.framerate : 30;
    this.videoDuration = Math.round(TICKS_PER_SECOND / fps);
  }

  /** Audio waiting for the next video frame. */
  get pendingAudioFrames(): number {
    return this.pendingAudio.length;
  }

  /** Returns a fragment when the frame closes one (every video frame; audio-only: every few frames). */
  push(frame: Frame): Fragment | undefined {
    if (frame.track === 'audio') {
      if (frame.codec !== this.init.audio?.codec) return undefined; // e.g. Opus beside AAC, for WebRTC
      this.queueAudio(frame);
      if (!this.init.video && this.pendingAudio.length >= AUDIO_ONLY_SAMPLES_PER_FRAGMENT) return this.flushAudio();
      return undefined;
    }
    if (!this.init.video) return undefined;
    if (this.lastVideoDts !== undefined) {
      const gap = frame.dts - this.lastVideoDts;
      if (gap > 0 && gap < TICKS_PER_SECOND) this.videoDuration = gap;
    }
    this.lastVideoDts = frame.dts;
    return this.write(frame);
  }

  /** Emits the pending audio on its own (video paused, or the stream is audio-only). */
  flushAudio(): Fragment | undefined {
    if (this.pendingAudio.length === 0) return undefined;
    return this.write(undefined);
  }

  private queueAudio(frame: Frame): void {
    const samples = frame.codec === 'opus' ? opusPacketSamples(frame.payload) : AAC_FRAME_SAMPLES;
    const expected = Math.round((frame.dts * this.audioRate) / TICKS_PER_SECOND);
    const queuedEnd = this.pendingAudio.length === 0 ? this.audioClock : this.pendingAudioStart + this.pendingAudioSamples;
    if (queuedEnd === undefined || Math.abs(expected - queuedEnd) > 2 * samples) {
      // First frame, or a real gap (publisher restart, lost frames): resync the clock.
      if (this.pendingAudio.length > 0) this.pendingAudio = []; // cannot express a gap inside one trun
      this.pendingAudioSamples = 0;
      this.pendingAudioStart = expected;
    } else if (this.pendingAudio.length === 0) {
      this.pendingAudioStart = queuedEnd;
    }
    this.pendingAudio.push({ payload: frame.payload, receivedAt: frame.receivedAt, samples });
    this.pendingAudioSamples += samples;
  }

  private write(video: Frame | undefined): Fragment {
    const audio = this.pendingAudio;
    const audioCount = audio.length;
    let audioBytes = 0;
    for (const a of audio) audioBytes += a.payload.length;
    const videoBytes = video ? video.payload.length : 0;

    const prftSize = this.prft ? 32 : 0;
    const videoTrafSize = video ? 80 : 0;
    const audioTrafSize = audioCount > 0 ? 64 + 8 * audioCount : 0;
    const moofSize = 8 + 16 + videoTrafSize + audioTrafSize;
    const total = prftSize + moofSize + 8 + videoBytes + audioBytes;
    const buf = Buffer.allocUnsafe(this.headroom + total);
    let p = this.headroom;

    const receivedAt = video ? video.receivedAt : audio[audioCount - 1]!.receivedAt;
    const audioStart = this.pendingAudioStart;
    if (this.prft) {
      const ntp = receivedAt / 1000 + NTP_EPOCH_OFFSET_S;
      const ntpSeconds = Math.floor(ntp);
      const refTrack = video ? VIDEO_TRACK_ID : AUDIO_TRACK_ID;
      const mediaTime = video ? video.dts + video.cto : this.pendingAudioStart;
      p = header(buf, p, 32, 'prft');
      buf.writeUInt32BE(0x01000000, p); // version 1, flags 0
      buf.writeUInt32BE(refTrack, p + 4);
      buf.writeUInt32BE(ntpSeconds >>> 0, p + 8);
      buf.writeUInt32BE(Math.floor((ntp - ntpSeconds) * 0x100000000) >>> 0, p + 12);
      writeU64(buf, p + 16, Math.max(0, mediaTime));
      p += 24;
    }

    const moofStart = p;
    p = header(buf, p, moofSize, 'moof');
    p = header(buf, p, 16, 'mfhd');
    buf.writeUInt32BE(0, p);
    buf.writeUInt32BE(++this.sequence >>> 0, p + 4);
    p += 8;
    const mdatPayloadOffset = moofSize + 8; // relative to the moof (default-base-is-moof)

    if (video) {
      p = header(buf, p, videoTrafSize, 'traf');
      p = header(buf, p, 16, 'tfhd');
      buf.writeUInt32BE(0x00020000, p); // default-base-is-moof
      buf.writeUInt32BE(VIDEO_TRACK_ID, p + 4);
      p += 8;
      p = header(buf, p, 20, 'tfdt');
      buf.writeUInt32BE(0x01000000, p);
      writeU64(buf, p + 4, Math.max(0, video.dts));
      p += 12;
      p = header(buf, p, 36, 'trun');
      buf.writeUInt32BE(0x01000f01, p); // v1: data-offset, duration, size, flags, composition offset
      buf.writeUInt32BE(1, p + 4);
      buf.writeInt32BE(mdatPayloadOffset, p + 8);
      buf.writeUInt32BE(this.videoDuration, p + 12);
      buf.writeUInt32BE(videoBytes, p + 16);
      buf.writeUInt32BE(video.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC, p + 20);
      buf.writeInt32BE(video.cto, p + 24);
      p += 28;
    }

    if (audioCount > 0) {
      p = header(buf, p, audioTrafSize, 'traf');
      p = header(buf, p, 16, 'tfhd');
      buf.writeUInt32BE(0x00020000, p);
      buf.writeUInt32BE(AUDIO_TRACK_ID, p + 4);
      p += 8;
      p = header(buf, p, 20, 'tfdt');
      buf.writeUInt32BE(0x01000000, p);
      writeU64(buf, p + 4, this.pendingAudioStart);
      p += 12;
      p = header(buf, p, 20 + 8 * audioCount, 'trun');
      buf.writeUInt32BE(0x00000301, p); // data-offset, duration, size
      buf.writeUInt32BE(audioCount, p + 4);
      buf.writeInt32BE(mdatPayloadOffset + videoBytes, p + 8);
      p += 12;
      for (const a of audio) {
        buf.writeUInt32BE(a.samples, p);
        buf.writeUInt32BE(a.payload.length, p + 4);
        p += 8;
      }
    }
    if (p - moofStart !== moofSize) throw new Error(`moof size mismatch: ${p - moofStart} != ${moofSize}`);

    p = header(buf, p, 8 + videoBytes + audioBytes, 'mdat');
    if (video) p += video.payload.copy(buf, p);
    for (const a of audio) p += a.payload.copy(buf, p);

    if (audioCount > 0) {
      this.audioClock = this.pendingAudioStart + this.pendingAudioSamples;
      this.pendingAudio = [];
      this.pendingAudioSamples = 0;
    }
    const time = video ? video.dts : Math.round((audioStart * TICKS_PER_SECOND) / this.audioRate);
    return { buffer: buf, offset: this.headroom, keyframe: video ? video.keyframe : !this.init.video, receivedAt, time };
  }
}

function header(buf: Buffer, p: number, size: number, type: string): number {
  buf.writeUInt32BE(size, p);
  buf.write(type, p + 4, 4, 'latin1');
  return p + 8;
}

function writeU64(buf: Buffer, p: number, value: number): void {
  const v = Math.round(value);
  buf.writeUInt32BE(Math.floor(v / 0x100000000) >>> 0, p);
  buf.writeUInt32BE(v >>> 0, p + 4);
}
