/**
 * SRT packets on the wire (the SRT Internet-Draft, draft-sharabayko-srt, section 3;
 * libsrt's docs/features/handshake.md): the 16-byte header of data and control
 * packets, the handshake with its extensions, ACK, NAK loss lists. Pure: bytes in,
 * objects out, and back. Every reader throws SrtPacketError on anything malformed.
 */

export const SRT_HEADER_SIZE = 16;
/** Sequence numbers are 31 bits and wrap. */
export const SEQ_MODULO = 0x80000000;

export const ControlType = {
  HANDSHAKE: 0,
  KEEPALIVE: 1,
  ACK: 2,
  NAK: 3,
  CONGESTION_WARNING: 4,
  SHUTDOWN: 5,
  ACKACK: 6,
  DROPREQ: 7,
  PEERERROR: 8,
  USER: 0x7fff,
} as const;

/** Subtypes of the user-defined control type (SRT's extended messages), and handshake extension types. */
export const SrtCommand = {
  HSREQ: 1,
  HSRSP: 2,
  KMREQ: 3,
  KMRSP: 4,
  SID: 5,
  CONGESTION: 6,
  FILTER: 7,
  GROUP: 8,
} as const;

export const HandshakeType = {
  WAVEAHAND: 0,
  INDUCTION: 1,
  CONCLUSION: -1,
  AGREEMENT: -2,
  DONE: -3,
} as const;
/** A rejection: this plus the reason (libsrt's URQ_FAILURE_TYPES). */
export const REJECTION_BASE = 1000;

/** Extension flags of an HSv5 conclusion's Type field. */
export const HsExt = { HSREQ: 1, KMREQ: 2, CONFIG: 4 } as const;
/** The Type field's extension part in a listener's HSv5 induction answer. */
export const SRT_MAGIC = 0x4a17;
/** SRT flags of HSREQ/HSRSP. */
export const SrtFlag = {
  TSBPDSND: 0x01,
  TSBPDRCV: 0x02,
  HAICRYPT: 0x04,
  TLPKTDROP: 0x08,
  NAKREPORT: 0x10,
  REXMITFLG: 0x20,
  STREAM: 0x40,
  PACKET_FILTER: 0x80,
} as const;

export class SrtPacketError extends Error {}

export interface DataPacket {
  kind: 'data';
  seq: number;
  /** Position in message (PP): 3 = a whole message in one packet (live mode). */
  position: number;
  inOrder: boolean;
  /** Encryption key flags (KK): 0 none, 1 even, 2 odd. */
  key: number;
  retransmitted: boolean;
  messageNumber: number;
  /** Microseconds since the sender's connection start (32 bits, wraps in 71 minutes). */
  timestamp: number;
  destination: number;
  payload: Buffer;
}

export interface ControlPacket {
  kind: 'control';
  type: number;
  subtype: number;
  /** Type-specific information (the ACK number of ACK and ACKACK, the message number of DROPREQ). */
  info: number;
  timestamp: number;
  destination: number;
  body: Buffer;
}

export type SrtPacket = DataPacket | ControlPacket;

export function readPacket(b: Buffer): SrtPacket {
  if (b.length < SRT_HEADER_SIZE) throw new SrtPacketError(`a ${b.length}-byte packet (the header is 16)`);
  const w0 = b.readUInt32BE(0);
  const w1 = b.readUInt32BE(4);
  const timestamp = b.readUInt32BE(8);
  const destination = b.readUInt32BE(12);
  if (w0 & 0x80000000) {
    return { kind: 'control', type: (w0 >>> 16) & 0x7fff, subtype: w0 & 0xffff, info: w1, timestamp, destination, body: b.subarray(SRT_HEADER_SIZE) };
  }
  return {
    kind: 'data',
    seq: w0,
    position: w1 >>> 30,
    inOrder: ((w1 >>> 29) & 1) === 1,
    key: (w1 >>> 27) & 3,
    retransmitted: ((w1 >>> 26) & 1) === 1,
    messageNumber: w1 & 0x03ffffff,
    timestamp,
    destination,
    payload: b.subarray(SRT_HEADER_SIZE),
  };
}

/** A control packet: header and body in one new buffer. */
export function writeControl(type: number, subtype: number, info: number, timestamp: number, destination: number, body?: Buffer): Buffer {
  const out = Buffer.allocUnsafe(SRT_HEADER_SIZE + (body?.length ?? 0));
  out.writeUInt32BE((0x80000000 | (type << 16) | subtype) >>> 0, 0);
  out.writeUInt32BE(info >>> 0, 4);
  out.writeUInt32BE(timestamp >>> 0, 8);
  out.writeUInt32BE(destination >>> 0, 12);
  body?.copy(out, SRT_HEADER_SIZE);
  return out;
}

/** A data packet (for tests and tools: the relay only receives them). */
export function writeData(p: Omit<DataPacket, 'kind'>): Buffer {
  const out = Buffer.allocUnsafe(SRT_HEADER_SIZE + p.payload.length);
  out.writeUInt32BE(p.seq & 0x7fffffff, 0);
  const w1 = ((p.position & 3) << 30) | ((p.inOrder ? 1 : 0) << 29) | ((p.key & 3) << 27) | ((p.retransmitted ? 1 : 0) << 26) | (p.messageNumber & 0x03ffffff);
  out.writeUInt32BE(w1 >>> 0, 4);
  out.writeUInt32BE(p.timestamp >>> 0, 8);
  out.writeUInt32BE(p.destination >>> 0, 12);
  p.payload.copy(out, SRT_HEADER_SIZE);
  return out;
}

export interface HandshakeExtension {
  type: number;
  /** Its content (a multiple of 4 bytes). */
  content: Buffer;
}

export interface Handshake {
  version: number;
  /** HSv5: advertised PBKEYLEN / 8 (2, 3, 4 for AES-128/192/256; 0 none). */
  encryption: number;
  /** HSv5: HsExt flags; or the magic 0x4A17 in an induction answer; or UDT_DGRAM (2) from an HSv4 peer. */
  extensionField: number;
  isn: number;
  mss: number;
  flowWindow: number;
  /** HandshakeType, or REJECTION_BASE + a reason. */
  type: number;
  socketId: number;
  cookie: number;
  /** The peer's address as the sender sees it: 16 bytes (IPv4 in the first 4, little-endian words as libsrt writes). */
  peerIp: Buffer;
  extensions: HandshakeExtension[];
}

const HANDSHAKE_SIZE = 48;

export function readHandshake(body: Buffer): Handshake {
  if (body.length < HANDSHAKE_SIZE) throw new SrtPacketError(`a ${body.length}-byte handshake (at least 48)`);
  const extensions: HandshakeExtension[] = [];
  let p = HANDSHAKE_SIZE;
  while (p + 4 <= body.length) {
    const type = body.readUInt16BE(p);
    const words = body.readUInt16BE(p + 2);
    const end = p + 4 + words * 4;
    if (end > body.length) throw new SrtPacketError(`handshake extension ${type} of ${words} words runs past the packet`);
    extensions.push({ type, content: body.subarray(p + 4, end) });
    p = end;
    if (extensions.length > 16) throw new SrtPacketError('more than 16 handshake extensions');
  }
  return {
    version: body.readUInt32BE(0),
    encryption: body.readUInt16BE(4),
    extensionField: body.readUInt16BE(6),
    isn: body.readUInt32BE(8),
    mss: body.readUInt32BE(12),
    flowWindow: body.readUInt32BE(16),
    type: body.readInt32BE(20),
    socketId: body.readUInt32BE(24),
    cookie: body.readUInt32BE(28),
    peerIp: body.subarray(32, 48),
    extensions,
  };
}

export function writeHandshake(h: Handshake): Buffer {
  const size = HANDSHAKE_SIZE + h.extensions.reduce((n, e) => n + 4 + e.content.length, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32BE(h.version >>> 0, 0);
  out.writeUInt16BE(h.encryption, 4);
  out.writeUInt16BE(h.extensionField, 6);
  out.writeUInt32BE(h.isn >>> 0, 8);
  out.writeUInt32BE(h.mss >>> 0, 12);
  out.writeUInt32BE(h.flowWindow >>> 0, 16);
  out.writeInt32BE(h.type, 20);
  out.writeUInt32BE(h.socketId >>> 0, 24);
  out.writeUInt32BE(h.cookie >>> 0, 28);
  h.peerIp.copy(out, 32, 0, 16);
  let p = HANDSHAKE_SIZE;
  for (const e of h.extensions) {
    if (e.content.length % 4 !== 0) throw new RangeError('a handshake extension is whole 32-bit words');
    out.writeUInt16BE(e.type, p);
    out.writeUInt16BE(e.content.length / 4, p + 2);
    e.content.copy(out, p + 4);
    p += 4 + e.content.length;
  }
  return out;
}

/**
 * A string extension (stream id, congestion controller): UTF-8 padded with NULs to
 * whole words, each 4-byte word byte-reversed (libsrt writes it as host-order words
 * on a little-endian machine).
 */
export function readStringExtension(content: Buffer): string {
  const bytes = Buffer.allocUnsafe(content.length);
  for (let i = 0; i + 4 <= content.length; i += 4) {
    bytes[i] = content[i + 3]!;
    bytes[i + 1] = content[i + 2]!;
    bytes[i + 2] = content[i + 1]!;
    bytes[i + 3] = content[i]!;
  }
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}

export function writeStringExtension(text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(Math.ceil(raw.length / 4) * 4);
  for (let i = 0; i < raw.length; i++) out[(i & ~3) + 3 - (i & 3)] = raw[i]!;
  return out;
}

export interface HsReq {
  /** SRT version as 0x00XXYYZZ. */
  version: number;
  flags: number;
  /** The sender's receive latency (ms): what it wants for data it receives. */
  receiverLatency: number;
  /** The latency (ms) the sender wants its peer to apply to what it sends. */
  senderLatency: number;
}

export function readHsReq(content: Buffer): HsReq {
  if (content.length < 12) throw new SrtPacketError('HSREQ shorter than 3 words');
  return {
    version: content.readUInt32BE(0),
    flags: content.readUInt32BE(4),
    receiverLatency: content.readUInt16BE(8),
    senderLatency: content.readUInt16BE(10),
  };
}

export function writeHsReq(r: HsReq): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32BE(r.version >>> 0, 0);
  out.writeUInt32BE(r.flags >>> 0, 4);
  out.writeUInt16BE(r.receiverLatency, 8);
  out.writeUInt16BE(r.senderLatency, 10);
  return out;
}

/** A NAK's loss list: single sequence numbers, or ranges (first with the top bit set, then last). */
export function writeLossList(ranges: readonly (readonly [number, number])[]): Buffer {
  let words = 0;
  for (const [a, b] of ranges) words += a === b ? 1 : 2;
  const out = Buffer.allocUnsafe(words * 4);
  let p = 0;
  for (const [a, b] of ranges) {
    if (a === b) {
      out.writeUInt32BE(a, p);
      p += 4;
    } else {
      out.writeUInt32BE((a | 0x80000000) >>> 0, p);
      out.writeUInt32BE(b, p + 4);
      p += 8;
    }
  }
  return out;
}

export function readLossList(body: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let p = 0; p + 4 <= body.length; p += 4) {
    const w = body.readUInt32BE(p);
    if (w & 0x80000000) {
      if (p + 8 > body.length) throw new SrtPacketError('a loss range without its end');
      out.push([w & 0x7fffffff, body.readUInt32BE(p + 4) & 0x7fffffff]);
      p += 4;
    } else {
      out.push([w, w]);
    }
  }
  return out;
}

/** `a - b` in 31-bit sequence space, as a signed distance (|d| < 2^30). */
export function seqDiff(a: number, b: number): number {
  let d = (a - b) % SEQ_MODULO;
  if (d >= SEQ_MODULO / 2) d -= SEQ_MODULO;
  else if (d < -SEQ_MODULO / 2) d += SEQ_MODULO;
  return d;
}

export function seqAdd(a: number, n: number): number {
  return (((a + n) % SEQ_MODULO) + SEQ_MODULO) % SEQ_MODULO;
}
