import { z } from 'zod';
import { RelayError } from '../errors.ts';
import type { AudioConfig, Codec, Frame, StreamInit, VideoConfig } from '../media/frame.ts';

/**
 * The bus message: a fixed header, the stream init on keyframes, then the
 * payload. Pure: bytes in, frames out.
 *
 *  0 u8  version            16 f64 dts (90 kHz)
 *  1 u8  kind               24 i32 cto (90 kHz)
 *  2 u8  flags              28 f64 receivedAt (ms since epoch)
 *  3 u8  codec              36 u32 whole payload length (all parts)
 *  4 u32 frame counter      40 u16 init length, then init JSON, then payload bytes
 *  8 f64 fencing token
 */
const VERSION = 1;
export const HEADER_SIZE = 42;
/** No video frame is this large (a 4K intra frame is a few MB): a split message claiming more is refused, not allocated. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export const MessageKind = { VIDEO: 1, AUDIO: 2, END: 3, PART: 4 } as const;
type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

const FLAG_KEYFRAME = 1;
const FLAG_MORE_PARTS = 2;

const CODEC_IDS: Record<Codec, number> = { h264: 1, aac: 2, opus: 3, hevc: 4, av1: 5 };
const CODECS: Codec[] = ['h264', 'h264', 'aac', 'opus', 'hevc', 'av1'];

/** Where a frame sits in its rendition's sequence, and under which lease it was published. */
export interface FrameStamp {
  /** Counts frames of one rendition from 0; a gap at the edge means frames were lost. */
  counter: number;
  /** The lease revision under which the origin published (fencing token). */
  token: number;
}

export type BusMessage =
  /** `syncPoint`: the message carried the init, i.e. the publisher marked it a random access point (a video keyframe, or audio of an audio-only stream). */
  | { kind: 'frame'; frame: Frame; stamp: FrameStamp; syncPoint: boolean }
  | { kind: 'end'; stamp: FrameStamp; receivedAt: number }
  /** A split frame is still being reassembled. */
  | { kind: 'partial' };

interface InitJson {
  /** The configuration record travels as `avcC` whatever the codec: the name nodes of earlier versions read. */
  v?: Omit<VideoConfig, 'config'> & { avcC: string };
  a?: Omit<AudioConfig, 'config'> & { config: string };
  o?: Omit<AudioConfig, 'config'> & { config: string };
  m: StreamInit['metadata'];
}

export function encodeInit(init: StreamInit): Buffer {
  const json: InitJson = { m: init.metadata };
  if (init.video) {
    const { config, ...video } = init.video;
    json.v = { ...video, avcC: config.toString('base64') };
  }
  if (init.audio) json.a = { ...init.audio, config: init.audio.config.toString('base64') };
  if (init.opus) json.o = { ...init.opus, config: init.opus.config.toString('base64') };
  return Buffer.from(JSON.stringify(json));
}

const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/)
  .max(65536);
const dimension = z.number().int().min(0).max(16384);
const codecString = z.string().regex(/^[A-Za-z0-9.]{1,40}$/);
const audioJson = z.object({
  codec: z.enum(['aac', 'opus']),
  config: base64,
  codecString,
  sampleRate: z.number().int().min(1).max(384000),
  channels: z.number().int().min(1).max(255),
});
/** What an init may be: a message from the bus is input like any other (fuzzed in test/fuzz). */
const initJson = z.object({
  v: z
    .object({ codec: z.enum(['h264', 'hevc', 'av1']), avcC: base64, codecString, width: dimension, height: dimension, bFrames: z.boolean().optional() })
    .optional(),
  a: audioJson.optional(),
  o: audioJson.optional(),
  m: z.record(z.string().max(64), z.union([z.string().max(200), z.number(), z.boolean()])).optional(),
});

export function decodeInit(bytes: Buffer): StreamInit {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RelayError('BUS_MESSAGE_INVALID', 'bus message has an unreadable init', { cause: err });
  }
  const checked = initJson.safeParse(parsed);
  if (!checked.success)
    throw new RelayError('BUS_MESSAGE_INVALID', `bus message init: ${checked.error.issues[0]?.path.join('.')}: ${checked.error.issues[0]?.message}`);
  const json = checked.data as InitJson;
  const init: StreamInit = { metadata: json.m ?? {} };
  if (json.v) {
    const { avcC, ...video } = json.v;
    init.video = { ...video, config: Buffer.from(avcC, 'base64') };
  }
  if (json.a) init.audio = { ...json.a, config: Buffer.from(json.a.config, 'base64') };
  if (json.o) init.opus = { ...json.o, config: Buffer.from(json.o.config, 'base64') };
  return init;
}

function writeHeader(
  buf: Buffer,
  kind: MessageKind,
  flags: number,
  codec: number,
  stamp: FrameStamp,
  dts: number,
  cto: number,
  receivedAt: number,
  totalLength: number,
  initLength: number,
): void {
  buf[0] = VERSION;
  buf[1] = kind;
  buf[2] = flags;
  buf[3] = codec;
  buf.writeUInt32BE(stamp.counter >>> 0, 4);
  buf.writeDoubleBE(stamp.token, 8);
  buf.writeDoubleBE(dts, 16);
  buf.writeInt32BE(cto, 24);
  buf.writeDoubleBE(receivedAt, 28);
  buf.writeUInt32BE(totalLength, 36);
  buf.writeUInt16BE(initLength, 40);
}

/**
 * Encodes a frame into one message, or several when it would exceed
 * `maxMessageBytes` (NATS max_payload): the first carries the header and init,
 * the others are PART messages that continue it.
 */
export function encodeFrame(frame: Frame, stamp: FrameStamp, withInit: boolean, maxMessageBytes: number, initBytes?: Buffer): Buffer[] {
  const init = withInit ? (initBytes ?? encodeInit(frame.init)) : undefined;
  const initLength = init?.length ?? 0;
  if (initLength > 0xffff) throw new RelayError('CODEC_UNSUPPORTED', 'codec configuration too large');
  const kind = frame.track === 'video' ? MessageKind.VIDEO : MessageKind.AUDIO;
  const room = maxMessageBytes - HEADER_SIZE;
  if (room - initLength < 1024) throw new RelayError('CONFIG_INVALID', `max message size ${maxMessageBytes} is too small`);
  const payload = frame.payload;
  const firstChunk = Math.min(payload.length, room - initLength);
  const more = firstChunk < payload.length;
  const flags = (frame.keyframe ? FLAG_KEYFRAME : 0) | (more ? FLAG_MORE_PARTS : 0);
  const first = Buffer.allocUnsafe(HEADER_SIZE + initLength + firstChunk);
  writeHeader(first, kind, flags, CODEC_IDS[frame.codec], stamp, frame.dts, frame.cto, frame.receivedAt, payload.length, initLength);
  init?.copy(first, HEADER_SIZE);
  payload.copy(first, HEADER_SIZE + initLength, 0, firstChunk);
  const messages = [first];
  for (let offset = firstChunk; offset < payload.length; offset += room) {
    const end = Math.min(payload.length, offset + room);
    const part = Buffer.allocUnsafe(HEADER_SIZE + end - offset);
    writeHeader(part, MessageKind.PART, end < payload.length ? FLAG_MORE_PARTS : 0, 0, stamp, frame.dts, 0, frame.receivedAt, payload.length, 0);
    payload.copy(part, HEADER_SIZE, offset, end);
    messages.push(part);
  }
  return messages;
}

export function encodeEnd(stamp: FrameStamp, receivedAt: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(buf, MessageKind.END, 0, 0, stamp, 0, 0, receivedAt, 0, 0);
  return buf;
}

/**
 * The fencing token of a message, read from its header alone: a consumer drops
 * stale messages before they can touch any decoding state.
 */
export function readToken(data: Uint8Array): number | undefined {
  if (data.length < HEADER_SIZE || data[0] !== VERSION) return undefined;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(8);
}

/**
 * Decodes bus messages of one rendition, in order. Stateful: it reassembles
 * split frames and reuses one StreamInit object while the init does not change,
 * so that a consumer can tell a new init by reference.
 */
export class FrameDecoder {
  private init: StreamInit | undefined;
  private initBytes: Buffer | undefined;
  private pending: { frame: Frame; stamp: FrameStamp; syncPoint: boolean; filled: number } | undefined;

  /** The init last seen on a keyframe; undefined until the first. */
  get currentInit(): StreamInit | undefined {
    return this.init;
  }

  /** Forget a half-reassembled frame (after a gap or a consumer restart). */
  reset(): void {
    this.pending = undefined;
  }

  decode(data: Uint8Array): BusMessage {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (buf.length < HEADER_SIZE || buf[0] !== VERSION) {
      throw new RelayError('BUS_MESSAGE_INVALID', `bus message of ${buf.length} bytes is not a version ${VERSION} frame`);
    }
    const kind = buf[1]!;
    const flags = buf[2]!;
    const stamp: FrameStamp = { counter: buf.readUInt32BE(4), token: buf.readDoubleBE(8) };
    const receivedAt = buf.readDoubleBE(28);
    const totalLength = buf.readUInt32BE(36);
    const initLength = buf.readUInt16BE(40);
    if (HEADER_SIZE + initLength > buf.length) throw new RelayError('BUS_MESSAGE_INVALID', 'bus message init overruns the message');
    if (kind === MessageKind.END) {
      this.pending = undefined;
      return { kind: 'end', stamp, receivedAt };
    }
    if (kind === MessageKind.PART) return this.continuePart(buf, stamp, flags);
    if (kind !== MessageKind.VIDEO && kind !== MessageKind.AUDIO) throw new RelayError('BUS_MESSAGE_INVALID', `bus message kind ${kind}`);
    const codec = CODECS[buf[3]!];
    if (!codec) throw new RelayError('CODEC_UNSUPPORTED', `bus codec id ${buf[3]}`);
    if (initLength > 0) {
      const initBytes = buf.subarray(HEADER_SIZE, HEADER_SIZE + initLength);
      if (!this.initBytes || !this.initBytes.equals(initBytes)) {
        this.init = decodeInit(initBytes);
        this.initBytes = Buffer.from(initBytes);
      }
    }
    const chunk = buf.subarray(HEADER_SIZE + initLength);
    const more = (flags & FLAG_MORE_PARTS) !== 0;
    const frame: Frame = {
      track: kind === MessageKind.VIDEO ? 'video' : 'audio',
      codec,
      dts: buf.readDoubleBE(16),
      cto: buf.readInt32BE(24),
      keyframe: (flags & FLAG_KEYFRAME) !== 0,
      payload: chunk,
      receivedAt,
      init: this.init ?? { metadata: {} },
    };
    const syncPoint = initLength > 0;
    if (!more) {
      this.pending = undefined;
      return { kind: 'frame', frame, stamp, syncPoint };
    }
    if (chunk.length >= totalLength) throw new RelayError('BUS_MESSAGE_INVALID', 'split bus message claims more parts than its length');
    if (totalLength > MAX_FRAME_BYTES) throw new RelayError('BUS_MESSAGE_INVALID', `split bus message claims ${totalLength} bytes`);
    frame.payload = Buffer.allocUnsafe(totalLength);
    chunk.copy(frame.payload, 0);
    this.pending = { frame, stamp, syncPoint, filled: chunk.length };
    return { kind: 'partial' };
  }

  private continuePart(buf: Buffer, stamp: FrameStamp, flags: number): BusMessage {
    const pending = this.pending;
    if (!pending || pending.stamp.counter !== stamp.counter || pending.stamp.token !== stamp.token) {
      // The start of this frame was not seen (consumer started mid-frame): skip it.
      this.pending = undefined;
      return { kind: 'partial' };
    }
    const chunk = buf.subarray(HEADER_SIZE);
    if (pending.filled + chunk.length > pending.frame.payload.length) {
      this.pending = undefined;
      throw new RelayError('BUS_MESSAGE_INVALID', 'split bus message overruns its frame');
    }
    chunk.copy(pending.frame.payload, pending.filled);
    pending.filled += chunk.length;
    if ((flags & FLAG_MORE_PARTS) !== 0) return { kind: 'partial' };
    this.pending = undefined;
    if (pending.filled !== pending.frame.payload.length) throw new RelayError('BUS_MESSAGE_INVALID', 'split bus message is short');
    return { kind: 'frame', frame: pending.frame, stamp: pending.stamp, syncPoint: pending.syncPoint };
  }
}
