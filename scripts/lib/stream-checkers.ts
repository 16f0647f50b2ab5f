/**
 * What a fan-out load generator checks in the bytes it receives, one checker per
 * viewer and protocol: WebSocket fMP4 (this relay), HTTP-FLV (node-media-server) and
 * RTMP play (nginx-rtmp). Pure and streaming: bytes go in as the socket delivers them,
 * split anywhere; counts come out. Nothing is copied but a few header bytes, so that
 * one load process keeps up with hundreds of 2.5 Mbit/s viewers.
 *
 * Continuity: a WebSocket viewer's fragments carry consecutive `mfhd` sequence numbers
 * (one video frame each); FLV and RTMP video messages carry decode timestamps, and a
 * step longer than `gapMs` (1.5 frame intervals at 30 fps) is a frame missing.
 */

import { randomBytes } from 'node:crypto';

export interface ViewerCounts {
  bytes: number;
  /** Video frames (fragments for fMP4; coded frames for FLV and RTMP). */
  frames: number;
  /** Breaks in continuity: sequence jumps or decode-time steps longer than a frame. */
  gaps: number;
  /** Frames those breaks lost (estimated from the jump for FLV and RTMP). */
  lost: number;
}

export interface StreamChecker {
  readonly counts: ViewerCounts;
  /** Feeds bytes received; returns bytes to send back (pongs, acknowledgements), if any. */
  push(chunk: Buffer): Buffer | undefined;
  /** A protocol error that makes the rest of the stream unreadable, if one was seen. */
  readonly error?: string;
}

const newCounts = (): ViewerCounts => ({ bytes: 0, frames: 0, gaps: 0, lost: 0 });

/** Counts a decode timestamp of a coded video frame, in ms. */
function countDts(counts: ViewerCounts, last: number, dts: number, frameMs: number): void {
  counts.frames++;
  if (last < 0) return;
  const step = dts - last;
  if (step > frameMs * 1.5) {
    counts.gaps++;
    counts.lost += Math.round(step / frameMs) - 1;
  }
}

/**
 * Server-to-client WebSocket frames (RFC 6455, unmasked) carrying this relay's fMP4:
 * text frames are control messages, binary frames init segments or `[prft] moof mdat`
 * fragments. The HTTP upgrade response must have been consumed before.
 */
export class WsFmp4Checker implements StreamChecker {
  readonly counts = newCounts();
  error?: string;
  private readonly header = Buffer.alloc(10);
  private headerHave = 0;
  private opcode = 0;
  private payloadLeft = 0;
  /** The start of a binary message, enough to find `mfhd`. */
  private readonly head = Buffer.alloc(64);
  private headHave = 0;
  private lastSequence = -1;

  push(chunk: Buffer): undefined {
    this.counts.bytes += chunk.length;
    let p = 0;
    while (p < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - p);
        if (this.opcode === 2 && this.headHave < this.head.length)
          this.headHave += chunk.copy(this.head, this.headHave, p, p + Math.min(n, this.head.length - this.headHave));
        this.payloadLeft -= n;
        p += n;
        if (this.payloadLeft === 0) this.message();
        continue;
      }
      this.header[this.headerHave++] = chunk[p++]!;
      if (this.headerHave < 2) continue;
      const len7 = this.header[1]! & 0x7f;
      const need = len7 === 127 ? 10 : len7 === 126 ? 4 : 2;
      if (this.headerHave < need) continue;
      if (this.header[1]! & 0x80) {
        this.error = 'masked frame from the server';
        return;
      }
      this.opcode = this.header[0]! & 0x0f;
      this.payloadLeft = need === 2 ? len7 : need === 4 ? this.header.readUInt16BE(2) : this.header.readUInt32BE(2) * 2 ** 32 + this.header.readUInt32BE(6);
      this.headerHave = 0;
      this.headHave = 0;
      if (this.payloadLeft === 0) this.message();
    }
    return undefined;
  }

  private message(): void {
    if (this.opcode !== 2) return;
    const at = this.head.indexOf('mfhd', 0, 'latin1');
    if (at < 0 || at + 12 > this.headHave) return; // an init segment
    const sequence = this.head.readUInt32BE(at + 8);
    this.counts.frames++;
    if (this.lastSequence >= 0 && sequence !== this.lastSequence + 1) {
      this.counts.gaps++;
      this.counts.lost += Math.max(0, sequence - this.lastSequence - 1);
    }
    this.lastSequence = sequence;
  }
}

/** An FLV byte stream (HTTP-FLV): the 9-byte header, then tags each followed by their size. */
export class FlvChecker implements StreamChecker {
  readonly counts = newCounts();
  error?: string;
  private skip = 13; // FLV header + PreviousTagSize0
  private readonly tag = Buffer.alloc(13); // 11-byte tag header + 2 body bytes
  private tagHave = 0;
  private bodyLeft = 0;
  private lastDts = -1;

  constructor(private readonly frameMs = 1000 / 30) {}

  push(chunk: Buffer): undefined {
    this.counts.bytes += chunk.length;
    let p = 0;
    while (p < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - p);
        this.skip -= n;
        p += n;
        continue;
      }
      const want = this.tagHave < 11 ? 11 : 13;
      const n = Math.min(want - this.tagHave, chunk.length - p);
      chunk.copy(this.tag, this.tagHave, p, p + n);
      this.tagHave += n;
      p += n;
      if (this.tagHave === 11) {
        const type = this.tag[0]! & 0x1f;
        this.bodyLeft = this.tag.readUIntBE(1, 3);
        if (type !== 8 && type !== 9 && type !== 18) {
          this.error = `unknown FLV tag type ${type}`;
          return;
        }
        if (type !== 9 || this.bodyLeft < 2) this.endTag(0);
      } else if (this.tagHave === 13) {
        // Video: byte 0 is frame type and codec, byte 1 the AVC packet type (1: coded frames).
        if (this.tag[12] === 1) {
          const dts = (this.tag.readUIntBE(4, 3) | (this.tag[7]! << 24)) >>> 0;
          countDts(this.counts, this.lastDts, dts, this.frameMs);
          this.lastDts = dts;
        }
        this.endTag(2);
      }
    }
    return undefined;
  }

  private endTag(bodyRead: number): void {
    this.skip = this.bodyLeft - bodyRead + 4;
    this.tagHave = 0;
  }
}

interface ChunkStream {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  /** Bytes of the current message still to come (0: the next chunk starts a new one). */
  remaining: number;
  /** The start of the current message (control messages whole, media the first bytes). */
  body: Buffer;
  bodyHave: number;
}

/**
 * RTMP as a player receives it after the handshake: chunks (RTMP 1.0, 5.3) carrying
 * control messages, commands and audio/video messages. Answers Set Chunk Size, Window
 * Acknowledgement Size (with acknowledgements) and pings, as a player must.
 */
export class RtmpPlayChecker implements StreamChecker {
  readonly counts = newCounts();
  error?: string;
  private chunkSize = 128;
  private readonly streams = new Map<number, ChunkStream>();
  private readonly header = Buffer.alloc(18);
  private headerHave = 0;
  private current?: ChunkStream;
  private payloadLeft = 0;
  private ackWindow = 0;
  private acked = 0;
  private lastDts = -1;

  constructor(private readonly frameMs = 1000 / 30) {}

  push(chunk: Buffer): Buffer | undefined {
    this.counts.bytes += chunk.length;
    let reply: Buffer[] | undefined;
    let p = 0;
    while (p < chunk.length && !this.error) {
      if (this.payloadLeft > 0) {
        const cs = this.current!;
        const n = Math.min(this.payloadLeft, chunk.length - p);
        if (cs.bodyHave < cs.body.length) cs.bodyHave += chunk.copy(cs.body, cs.bodyHave, p, p + Math.min(n, cs.body.length - cs.bodyHave));
        this.payloadLeft -= n;
        cs.remaining -= n;
        p += n;
        if (this.payloadLeft === 0 && cs.remaining === 0) {
          const out = this.message(cs);
          if (out) (reply ??= []).push(out);
        }
        continue;
      }
      this.header[this.headerHave++] = chunk[p++]!;
      const need = this.headerSize();
      if (need < 0 || this.headerHave < need) continue;
      this.startChunk();
      if (this.payloadLeft === 0 && this.current && this.current.remaining === 0) {
        const out = this.message(this.current);
        if (out) (reply ??= []).push(out);
      }
    }
    if (this.ackWindow > 0 && this.counts.bytes - this.acked >= this.ackWindow) {
      this.acked = this.counts.bytes;
      (reply ??= []).push(rtmpMessage(2, 3, 0, u32(this.counts.bytes >>> 0)));
    }
    return reply && Buffer.concat(reply);
  }

  /** Header bytes this chunk needs, or -1 while that is not known yet. */
  private headerSize(): number {
    const b0 = this.header[0]!;
    const basic = (b0 & 0x3f) === 0 ? 2 : (b0 & 0x3f) === 1 ? 3 : 1;
    const message = [11, 7, 3, 0][b0 >> 6]!;
    if (this.headerHave < basic + Math.min(message, 3)) return message === 0 ? basic : -1;
    const extended = message > 0 && this.header.readUIntBE(basic, 3) === 0xffffff ? 4 : 0;
    return basic + message + extended;
  }

  private startChunk(): void {
    const b0 = this.header[0]!;
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    let p = 1;
    if (csid === 0) csid = 64 + this.header[p++]!;
    else if (csid === 1) {
      csid = 64 + this.header[p]! + this.header[p + 1]! * 256;
      p += 2;
    }
    let cs = this.streams.get(csid);
    if (!cs) {
      if (fmt !== 0) {
        this.error = `chunk stream ${csid} starts with a type ${fmt} header`;
        return;
      }
      cs = { timestamp: 0, delta: 0, length: 0, type: 0, remaining: 0, body: Buffer.alloc(0), bodyHave: 0 };
      this.streams.set(csid, cs);
    }
    let time = fmt < 3 ? this.header.readUIntBE(p, 3) : 0;
    if (fmt < 3 && time === 0xffffff) time = this.header.readUInt32BE(p + (fmt === 0 ? 11 : fmt === 1 ? 7 : 3));
    if (fmt <= 1) {
      cs.length = this.header.readUIntBE(p + 3, 3);
      cs.type = this.header[p + 6]!;
    }
    const starts = cs.remaining === 0;
    if (fmt === 0) cs.timestamp = time;
    else if (fmt === 1 || fmt === 2) {
      cs.delta = time;
      cs.timestamp += time;
    } else if (starts) cs.timestamp += cs.delta;
    if (starts) {
      cs.remaining = cs.length;
      const keep = cs.type === 8 || cs.type === 9 ? 2 : Math.min(cs.length, 4096);
      if (cs.body.length !== keep) cs.body = Buffer.alloc(keep);
      cs.bodyHave = 0;
    }
    this.current = cs;
    this.payloadLeft = Math.min(this.chunkSize, cs.remaining);
    this.headerHave = 0;
  }

  private message(cs: ChunkStream): Buffer | undefined {
    const body = cs.body.subarray(0, cs.bodyHave);
    switch (cs.type) {
      case 1: // Set Chunk Size
        this.chunkSize = body.readUInt32BE(0) & 0x7fffffff;
        return undefined;
      case 4: // User Control: answer a Ping Request (6) with a Ping Response (7)
        if (body.readUInt16BE(0) === 6) return rtmpMessage(2, 4, 0, Buffer.concat([Buffer.from([0, 7]), body.subarray(2, 6)]));
        return undefined;
      case 5: // Window Acknowledgement Size
        this.ackWindow = body.readUInt32BE(0);
        return undefined;
      case 9:
        if (body[1] === 1) {
          countDts(this.counts, this.lastDts, cs.timestamp, this.frameMs);
          this.lastDts = cs.timestamp;
        }
        return undefined;
      default:
        return undefined;
    }
  }
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** One RTMP message in type 0 chunks of 128 bytes (the default chunk size). */
export function rtmpMessage(csid: number, type: number, streamId: number, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(12);
  head[0] = csid;
  head.writeUIntBE(0, 1, 3);
  head.writeUIntBE(payload.length, 4, 3);
  head[7] = type;
  head.writeUInt32LE(streamId, 8);
  parts.push(head);
  for (let p = 0; p < payload.length; p += 128) {
    if (p > 0) parts.push(Buffer.from([0xc0 | csid]));
    parts.push(payload.subarray(p, p + 128));
  }
  return Buffer.concat(parts);
}

type Amf0 = string | number | boolean | null | { [key: string]: Amf0 };

/** AMF0 encoding of command arguments (strings, numbers, booleans, null, plain objects). */
export function amf0(...values: Amf0[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const write = (v: Amf0) => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = 0;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.from([1, v ? 1 : 0]));
    else if (typeof v === 'string') parts.push(Buffer.from([2]), str(v));
    else if (v === null) parts.push(Buffer.from([5]));
    else {
      parts.push(Buffer.from([3]));
      for (const [k, inner] of Object.entries(v)) {
        parts.push(str(k));
        write(inner);
      }
      parts.push(Buffer.from([0, 0, 9]));
    }
  };
  values.forEach(write);
  return Buffer.concat(parts);
}

/** C0 and C1 of a plain (not digest) RTMP handshake, as a client sends them. */
export const rtmpC0C1 = () => Buffer.concat([Buffer.from([3]), Buffer.alloc(8), randomBytes(1528)]);

/** Once S0, S1 and S2 have all arrived: C2 (S1 echoed) and the bytes after them; undefined before. */
export function rtmpHandshakeDone(received: Buffer): { c2: Buffer; rest: Buffer } | undefined {
  return received.length < 3073 ? undefined : { c2: received.subarray(1, 1537), rest: received.subarray(3073) };
}

/** What a player sends after the handshake: connect, createStream, play (pipelined). */
export function rtmpPlayCommands(tcUrl: string, app: string, stream: string): Buffer {
  return Buffer.concat([
    rtmpMessage(
      3,
      20,
      0,
      amf0('connect', 1, { app, flashVer: 'LNX 9,0,124,2', tcUrl, fpad: false, capabilities: 15, audioCodecs: 3191, videoCodecs: 252, videoFunction: 1 }),
    ),
    rtmpMessage(3, 20, 0, amf0('createStream', 2, null)),
    rtmpMessage(8, 20, 1, amf0('play', 3, null, stream)),
  ]);
}

/** What an encoder sends after the handshake: a 4096-byte chunk size, connect, createStream, publish (pipelined). */
export function rtmpPublishCommands(tcUrl: string, app: string, key: string, chunkSize: number): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(chunkSize);
  return Buffer.concat([
    rtmpMessage(2, 1, 0, size),
    rtmpMessage(3, 20, 0, amf0('connect', 1, { app, type: 'nonprivate', flashVer: 'FMLE/3.0', tcUrl })),
    rtmpMessage(3, 20, 0, amf0('createStream', 2, null)),
    rtmpMessage(8, 20, 1, amf0('publish', 3, null, key, 'live')),
  ]);
}
