import { RelayError } from '../../errors.ts';
import { parseAudioSpecificConfig } from '../aac.ts';
import { TICKS_PER_MS, type AudioConfig, type Frame, type StreamInit, type VideoConfig } from '../frame.ts';
import { parseAvcC } from '../h264.ts';
import { decodeAmf0 } from './amf0.ts';

export const FlvTagType = { AUDIO: 8, VIDEO: 9, SCRIPT: 18 } as const;

const SOUND_FORMAT_AAC = 10;
const SOUND_FORMAT_EX_HEADER = 9;
const VIDEO_CODEC_AVC = 7;
const AVC_SEQUENCE_HEADER = 0;
const AVC_NALU = 1;
const FRAME_TYPE_KEY = 1;

/** Metadata keys worth carrying to viewers; anything else a publisher sends is dropped. */
const METADATA_KEYS = [
  'width',
  'height',
  'framerate',
  'videodatarate',
  'audiodatarate',
  'audiosamplerate',
  'audiosamplesize',
  'stereo',
  'encoder',
  'videocodecid',
  'audiocodecid',
  'duration',
] as const;

export type ReaderNotice = { type: 'init'; init: StreamInit } | { type: 'unsupported'; track: 'video' | 'audio'; codec: string };

/**
 * Turns FLV tag bodies (as RTMP carries them) into frames. Pure and stateful per
 * publisher: it remembers the codec configuration and metadata, and hands every
 * frame the init in force. The caller's buffers may be reused after `push`
 * returns: payloads are copied.
 */
export class FlvFrameReader {
  private init: StreamInit = { metadata: {} };
  private readonly unsupportedSeen = new Set<string>();
  /** Deltas before the first keyframe cannot be decoded by anyone: they are dropped. */
  private waitingForKeyframe = true;

  constructor(private readonly onNotice: (notice: ReaderNotice) => void = () => {}) {}

  get current(): StreamInit {
    return this.init;
  }

  /** Returns the frame the tag carries, if any. Throws RTMP_PROTOCOL_ERROR on malformed tags. */
  push(tagType: number, timestampMs: number, body: Buffer, receivedAt: number): Frame | undefined {
    if (tagType === FlvTagType.VIDEO) return this.video(timestampMs, body, receivedAt);
    if (tagType === FlvTagType.AUDIO) return this.audio(timestampMs, body, receivedAt);
    if (tagType === FlvTagType.SCRIPT) this.script(body);
    return undefined;
  }

  /** `@setDataFrame onMetaData {...}` or `onMetaData {...}`; other script tags are ignored. */
  private script(body: Buffer): void {
    const values = decodeAmf0(body);
    const at = values[0] === '@setDataFrame' ? 1 : 0;
    const data = values[at + 1];
    if (values[at] === 'onMetaData' && typeof data === 'object' && data !== null && !Array.isArray(data) && !(data instanceof Date)) {
      this.metadata(data);
    }
  }

  /** Keeps the publisher's metadata that viewers may see. */
  metadata(data: Record<string, unknown>): void {
    const metadata: StreamInit['metadata'] = {};
    for (const key of METADATA_KEYS) {
      const value = data[key];
      if (typeof value === 'number' && Number.isFinite(value)) metadata[key] = value;
      else if (typeof value === 'boolean') metadata[key] = value;
      else if (typeof value === 'string') metadata[key] = value.slice(0, 200);
    }
    this.replaceInit({ ...this.init, metadata });
  }

  private video(timestampMs: number, body: Buffer, receivedAt: number): Frame | undefined {
    if (body.length < 1) throw new RelayError('RTMP_PROTOCOL_ERROR', 'empty video tag');
    const isExHeader = (body[0]! & 0x80) !== 0;
    const codecId = body[0]! & 0x0f;
    if (isExHeader) {
      const fourCC = body.length >= 5 ? body.subarray(1, 5).toString('latin1') : '?';
      this.unsupported('video', `enhanced-RTMP ${fourCC}`);
      return undefined;
    }
    if (codecId !== VIDEO_CODEC_AVC) {
      this.unsupported('video', `FLV video codec ${codecId}`);
      return undefined;
    }
    if (body.length < 5) throw new RelayError('RTMP_PROTOCOL_ERROR', 'truncated AVC video tag');
    const frameType = (body[0]! >> 4) & 0x07;
    const packetType = body[1]!;
    if (packetType === AVC_SEQUENCE_HEADER) {
      const avcC = Buffer.from(body.subarray(5));
      const parsed = parseAvcC(avcC);
      const video: VideoConfig = {
        codec: 'h264',
        avcC,
        codecString: parsed.codecString,
        width: parsed.width,
        height: parsed.height,
      };
      if (!this.init.video || !this.init.video.avcC.equals(avcC)) {
        this.replaceInit({ ...this.init, video });
        this.waitingForKeyframe = true;
      }
      return undefined;
    }
    if (packetType !== AVC_NALU) return undefined; // end of sequence
    if (!this.init.video) return undefined; // frames before their configuration cannot be decoded
    const keyframe = frameType === FRAME_TYPE_KEY;
    if (this.waitingForKeyframe && !keyframe) return undefined;
    this.waitingForKeyframe = false;
    const ctoMs = body.readIntBE(2, 3); // SI24: negative offsets are legal
    const payload = Buffer.from(body.subarray(5));
    if (payload.length === 0) return undefined;
    return {
      track: 'video',
      codec: 'h264',
      dts: timestampMs * TICKS_PER_MS,
      cto: ctoMs * TICKS_PER_MS,
      keyframe,
      payload,
      receivedAt,
      init: this.init,
    };
  }

  private audio(timestampMs: number, body: Buffer, receivedAt: number): Frame | undefined {
    if (body.length < 1) throw new RelayError('RTMP_PROTOCOL_ERROR', 'empty audio tag');
    const soundFormat = body[0]! >> 4;
    if (soundFormat !== SOUND_FORMAT_AAC) {
      const fourCC = soundFormat === SOUND_FORMAT_EX_HEADER && body.length >= 5 ? body.subarray(1, 5).toString('latin1') : String(soundFormat);
      this.unsupported('audio', soundFormat === SOUND_FORMAT_EX_HEADER ? `enhanced-RTMP ${fourCC}` : `FLV sound format ${soundFormat}`);
      return undefined;
    }
    if (body.length < 2) throw new RelayError('RTMP_PROTOCOL_ERROR', 'truncated AAC audio tag');
    if (body[1] === 0) {
      const asc = Buffer.from(body.subarray(2));
      const parsed = parseAudioSpecificConfig(asc);
      const audio: AudioConfig = {
        codec: 'aac',
        config: asc,
        codecString: parsed.codecString,
        sampleRate: parsed.sampleRate,
        channels: parsed.channels,
      };
      if (!this.init.audio || !this.init.audio.config.equals(asc)) this.replaceInit({ ...this.init, audio });
      return undefined;
    }
    if (!this.init.audio || body.length < 3) return undefined;
    return {
      track: 'audio',
      codec: 'aac',
      dts: timestampMs * TICKS_PER_MS,
      cto: 0,
      keyframe: true,
      payload: Buffer.from(body.subarray(2)),
      receivedAt,
      init: this.init,
    };
  }

  private replaceInit(init: StreamInit): void {
    this.init = init;
    this.onNotice({ type: 'init', init });
  }

  private unsupported(track: 'video' | 'audio', codec: string): void {
    if (this.unsupportedSeen.has(codec)) return;
    this.unsupportedSeen.add(codec);
    this.onNotice({ type: 'unsupported', track, codec });
  }
}
