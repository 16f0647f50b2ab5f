import { RelayError } from '../../errors.ts';
import { parseAudioSpecificConfig } from '../aac.ts';
import { TICKS_PER_MS, type AudioConfig, type Frame, type StreamInit, type VideoConfig } from '../frame.ts';
import { av1Sample, parseAv1C } from '../av1.ts';
import { parseAvcC } from '../h264.ts';
import { parseHvcC } from '../hevc.ts';
import { decodeAmf0 } from './amf0.ts';

export const FlvTagType = { AUDIO: 8, VIDEO: 9, SCRIPT: 18 } as const;

const SOUND_FORMAT_AAC = 10;
const SOUND_FORMAT_EX_HEADER = 9;
const VIDEO_CODEC_AVC = 7;
const AVC_SEQUENCE_HEADER = 0;
const AVC_NALU = 1;
const FRAME_TYPE_KEY = 1;
/** Enhanced RTMP v1 (veovera/enhanced-rtmp): the packet types of an ExVideoTagHeader. */
const EX_SEQUENCE_START = 0;
const EX_CODED_FRAMES = 1;
const EX_CODED_FRAMES_X = 3;
/** Video info/command frames carry no picture. */
const FRAME_TYPE_COMMAND = 5;

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
    if (isExHeader) return this.enhancedVideo(timestampMs, body, receivedAt);
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
      this.configure({ codec: 'h264', config: avcC, codecString: parsed.codecString, width: parsed.width, height: parsed.height });
      return undefined;
    }
    if (packetType !== AVC_NALU) return undefined; // end of sequence
    const ctoMs = body.readIntBE(2, 3); // SI24: negative offsets are legal
    return this.videoFrame('h264', timestampMs, ctoMs, frameType === FRAME_TYPE_KEY, Buffer.from(body.subarray(5)), receivedAt);
  }

  /**
   * Enhanced RTMP v1 (OBS 30+): `[1 FrameType PacketType] FourCC ...`. HEVC (`hvc1`) and
   * AV1 (`av01`) are read; other FourCCs (VP9) are dropped with a notice.
   */
  private enhancedVideo(timestampMs: number, body: Buffer, receivedAt: number): Frame | undefined {
    if (body.length < 5) throw new RelayError('RTMP_PROTOCOL_ERROR', 'truncated enhanced-RTMP video tag');
    const frameType = (body[0]! >> 4) & 0x07;
    const packetType = body[0]! & 0x0f;
    const fourCC = body.toString('latin1', 1, 5);
    const codec = fourCC === 'hvc1' ? 'hevc' : fourCC === 'av01' ? 'av1' : undefined;
    if (!codec) {
      this.unsupported('video', `enhanced-RTMP ${fourCC}`);
      return undefined;
    }
    if (packetType === EX_SEQUENCE_START) {
      const record = Buffer.from(body.subarray(5));
      if (codec === 'hevc') {
        const parsed = parseHvcC(record);
        this.configure({ codec, config: record, codecString: parsed.codecString, width: parsed.width, height: parsed.height });
      } else {
        const parsed = parseAv1C(record);
        // A configuration without a sequence header says no size: the publisher's metadata does.
        const size = (key: 'width' | 'height', parsedSize: number) => parsedSize || Math.max(0, Math.round(Number(this.init.metadata[key]) || 0));
        this.configure({ codec, config: record, codecString: parsed.codecString, width: size('width', parsed.width), height: size('height', parsed.height) });
      }
      return undefined;
    }
    if (frameType === FRAME_TYPE_COMMAND) return undefined;
    if (packetType !== EX_CODED_FRAMES && packetType !== EX_CODED_FRAMES_X) return undefined; // sequence end, metadata, TS sequence start
    // HEVC's CodedFrames carry a composition offset (SI24); AV1's and every CodedFramesX carry none.
    const withCto = packetType === EX_CODED_FRAMES && codec === 'hevc';
    if (withCto && body.length < 8) throw new RelayError('RTMP_PROTOCOL_ERROR', 'truncated enhanced-RTMP HEVC tag');
    const ctoMs = withCto ? body.readIntBE(5, 3) : 0;
    const data = body.subarray(withCto ? 8 : 5);
    const payload = codec === 'av1' ? Buffer.from(av1Sample(data)) : Buffer.from(data);
    return this.videoFrame(codec, timestampMs, ctoMs, frameType === FRAME_TYPE_KEY, payload, receivedAt);
  }

  /** A video configuration (sequence header): a new init when it differs, and decoding waits for a keyframe. */
  private configure(video: VideoConfig): void {
    if (this.init.video && this.init.video.codec === video.codec && this.init.video.config.equals(video.config)) return;
    this.replaceInit({ ...this.init, video });
    this.waitingForKeyframe = true;
  }

  private videoFrame(
    codec: VideoConfig['codec'],
    timestampMs: number,
    ctoMs: number,
    keyframe: boolean,
    payload: Buffer,
    receivedAt: number,
  ): Frame | undefined {
    const video = this.init.video;
    if (!video) return undefined; // frames before their configuration cannot be decoded
    if (video.codec !== codec) throw new RelayError('RTMP_PROTOCOL_ERROR', `a ${codec} frame in a ${video.codec} stream`);
    if (this.waitingForKeyframe && !keyframe) return undefined;
    this.waitingForKeyframe = false;
    if (payload.length === 0) return undefined;
    return { track: 'video', codec, dts: timestampMs * TICKS_PER_MS, cto: ctoMs * TICKS_PER_MS, keyframe, payload, receivedAt, init: this.init };
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
