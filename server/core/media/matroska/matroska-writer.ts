import { TICKS_PER_MS, type Frame, type StreamInit, type VideoCodec } from '../frame.ts';

// EBML element IDs (Matroska specification, RFC 9559), with their length markers.
const EBML = 0x1a45dfa3;
const SEGMENT = 0x18538067;
const INFO = 0x1549a966;
const TRACKS = 0x1654ae6b;
const TRACK_ENTRY = 0xae;
const CLUSTER = 0x1f43b675;
const CLUSTER_TIMESTAMP = 0xe7;
const SIMPLE_BLOCK = 0xa3;
const VIDEO_TRACK = 1;
const AUDIO_TRACK = 2;
/** A block's timestamp is a signed 16-bit offset from its cluster's (1 ms units). */
const MAX_BLOCK_OFFSET_MS = 30_000;
/** "Size unknown": a live segment and live clusters end where the next element starts. */
const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** An EBML variable-length size. */
function vint(n: number): Buffer {
  for (let length = 1; length <= 8; length++) {
    if (n < 2 ** (7 * length) - 1) {
      const out = Buffer.alloc(length);
      let v = n;
      for (let i = length - 1; i >= 0; i--) {
        out[i] = v % 256;
        v = Math.floor(v / 256);
      }
      out[0]! |= 0x80 >> (length - 1);
      return out;
    }
  }
  throw new Error(`EBML size ${n} too large`);
}

function id(value: number): Buffer {
  const bytes = value > 0xffffff ? 4 : value > 0xffff ? 3 : value > 0xff ? 2 : 1;
  const out = Buffer.alloc(bytes);
  out.writeUIntBE(value, 0, bytes);
  return out;
}

const element = (elementId: number, body: Buffer): Buffer => Buffer.concat([id(elementId), vint(body.length), body]);
const master = (elementId: number, children: Buffer[]): Buffer => element(elementId, Buffer.concat(children));
const text = (elementId: number, value: string): Buffer => element(elementId, Buffer.from(value, 'utf8'));
function uint(elementId: number, value: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeBigUInt64BE(BigInt(value));
  let start = 0;
  while (start < 7 && body[start] === 0) start++;
  return element(elementId, body.subarray(start));
}
function float(elementId: number, value: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeDoubleBE(value);
  return element(elementId, body);
}

/** An Opus identification header (RFC 7845 section 5.1) for a track that came without one (WebRTC carries none). */
export function opusHead(channels: number): Buffer {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1; // version
  head[9] = channels;
  head.writeUInt16LE(0, 10); // pre-skip: WebRTC packets start decoding at once
  head.writeUInt32LE(48_000, 12);
  head.writeInt16LE(0, 16); // output gain
  head[18] = 0; // mapping family 0: mono or stereo
  return head;
}

/** Matroska codec ids of the video codecs; CodecPrivate is their configuration record (avcC, hvcC, av1C). */
const MATROSKA_VIDEO: Record<VideoCodec, string> = { h264: 'V_MPEG4/ISO/AVC', hevc: 'V_MPEGH/ISO/HEVC', av1: 'V_AV1' };

/**
 * Writes frames as a live Matroska byte stream: what ffmpeg reads on its stdin
 * for a source FLV cannot carry here (Opus from WHIP; HEVC and AV1 from Enhanced
 * RTMP, which ffmpeg 5.1 cannot read in FLV). Pure: frames in, bytes out. One
 * segment and one cluster per video keyframe, both of unknown size; block
 * timestamps are presentation times in milliseconds on the source's timeline
 * (ffmpeg's decoders put B-frames back in order).
 */
export class MatroskaWriter {
  private clusterMs: number | undefined;

  /** The EBML header, the segment's start, its Info and its Tracks for `init`. */
  start(init: StreamInit): Buffer {
    this.clusterMs = undefined;
    const header = master(EBML, [
      uint(0x4286, 1),
      uint(0x42f7, 1),
      uint(0x42f2, 4),
      uint(0x42f3, 8),
      text(0x4282, 'matroska'),
      uint(0x4287, 4),
      uint(0x4285, 2),
    ]);
    const info = master(INFO, [uint(0x2ad7b1, 1_000_000), text(0x4d80, 'relay'), text(0x5741, 'relay')]);
    const tracks: Buffer[] = [];
    if (init.video) {
      tracks.push(
        master(TRACK_ENTRY, [
          uint(0xd7, VIDEO_TRACK),
          uint(0x73c5, VIDEO_TRACK),
          uint(0x83, 1),
          uint(0x9c, 0),
          text(0x86, MATROSKA_VIDEO[init.video.codec]),
          element(0x63a2, init.video.config),
          master(0xe0, [uint(0xb0, init.video.width), uint(0xba, init.video.height)]),
        ]),
      );
    }
    if (init.audio) {
      const opus = init.audio.codec === 'opus';
      const privateData = opus ? (init.audio.config.length >= 19 ? init.audio.config : opusHead(init.audio.channels)) : init.audio.config;
      tracks.push(
        master(TRACK_ENTRY, [
          uint(0xd7, AUDIO_TRACK),
          uint(0x73c5, AUDIO_TRACK),
          uint(0x83, 2),
          uint(0x9c, 0),
          text(0x86, opus ? 'A_OPUS' : 'A_AAC'),
          element(0x63a2, privateData), // OpusHead, or the AAC AudioSpecificConfig
          ...(opus ? [uint(0x56bb, 80_000_000)] : []), // seek pre-roll: 80 ms, as RFC 7845 asks of Opus
          master(0xe1, [float(0xb5, opus ? 48_000 : init.audio.sampleRate), uint(0x9f, init.audio.channels)]),
        ]),
      );
    }
    return Buffer.concat([header, id(SEGMENT), UNKNOWN_SIZE, info, master(TRACKS, tracks)]);
  }

  /**
   * One frame as a SimpleBlock, after a new cluster at a video keyframe (or when the offset would not fit).
   * `shiftTicks` moves its timestamp without a copy of the frame.
   */
  frame(frame: Frame, shiftTicks = 0): Buffer {
    const ms = Math.max(0, Math.round((frame.dts + shiftTicks + frame.cto) / TICKS_PER_MS));
    const parts: Buffer[] = [];
    const offset = this.clusterMs === undefined ? undefined : ms - this.clusterMs;
    if (offset === undefined || (frame.track === 'video' && frame.keyframe) || offset > MAX_BLOCK_OFFSET_MS || offset < -MAX_BLOCK_OFFSET_MS) {
      this.clusterMs = ms;
      parts.push(id(CLUSTER), UNKNOWN_SIZE, uint(CLUSTER_TIMESTAMP, ms));
    }
    const head = Buffer.allocUnsafe(4);
    head[0] = 0x80 | (frame.track === 'video' ? VIDEO_TRACK : AUDIO_TRACK);
    head.writeInt16BE(ms - this.clusterMs!, 1);
    head[3] = frame.keyframe ? 0x80 : 0;
    parts.push(id(SIMPLE_BLOCK), vint(head.length + frame.payload.length), head, frame.payload);
    return Buffer.concat(parts);
  }
}
