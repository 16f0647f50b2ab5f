import { createHmac } from 'node:crypto';
import { readKeyingMaterial, SrtCryptoError, SrtDecryptor } from './srt-crypto.ts';
import {
  HandshakeType,
  HsExt,
  REJECTION_BASE,
  SRT_MAGIC,
  SrtCommand,
  SrtFlag,
  readHsReq,
  readStringExtension,
  writeHsReq,
  type Handshake,
  type HandshakeExtension,
} from './srt-packet.ts';

/** libsrt's rejection reasons (SRT_REJ_*, docs/API/rejection-codes.md) the listener uses. */
export const SrtReject = {
  PEER: 2,
  ROGUE: 4,
  BACKLOG: 5,
  CLOSE: 7,
  VERSION: 8,
  BADSECRET: 10,
  UNSECURE: 11,
  MESSAGEAPI: 12,
  CONGESTION: 13,
  FILTER: 14,
  GROUP: 15,
  CRYPTO: 17,
  /** Access control (SRT_REJX_*): 1000 + an HTTP-like status. */
  BAD_REQUEST: 1400,
  UNAUTHORIZED: 1401,
  OVERLOAD: 1402,
  FORBIDDEN: 1403,
  BAD_MODE: 1405,
  CONFLICT: 1409,
  NOTSUP_MEDIA: 1415,
  ISE: 1500,
  DOWN: 1503,
} as const;

/** The SRT version the listener announces (1.5.1, Debian's libsrt). */
export const SRT_VERSION = 0x010501;
/** The flags of our HSRSP: TSBPD both ways, too-late drop, periodic NAK, and the two legacy flags every peer sets. */
const RESPONSE_FLAGS = SrtFlag.TSBPDSND | SrtFlag.TSBPDRCV | SrtFlag.HAICRYPT | SrtFlag.TLPKTDROP | SrtFlag.NAKREPORT | SrtFlag.REXMITFLG;
const MAX_STREAM_ID = 512;

export interface ListenerSettings {
  /** Our receive latency (ms); the effective one is the larger of it and the caller's. */
  latencyMs: number;
  /** Empty: no encryption (a caller that encrypts is refused). */
  passphrase: string;
  mss: number;
  /** Packets the receive buffer holds (the flow window). */
  flowWindow: number;
}

/** A conclusion the listener accepts (the application may still refuse it, by the stream id). */
export interface AcceptedConclusion {
  ok: true;
  streamId: string;
  /** The caller's socket id: the destination of everything we send. */
  callerSocketId: number;
  isn: number;
  /** The effective TSBPD latency of what the caller sends (ms). */
  latencyMs: number;
  /** The latency the caller should use for what we send (ms; nothing here). */
  peerLatencyMs: number;
  mss: number;
  decryptor?: SrtDecryptor;
  /** The answer, with our socket id. */
  response(socketId: number): Handshake;
}

export interface RefusedConclusion {
  ok: false;
  /** SrtReject: what goes back in the handshake. */
  reason: number;
  message: string;
}

/** A SYN cookie: this address and port, this minute (the induction's answer; the conclusion must bring it back). */
export function synCookie(secret: Buffer, address: string, port: number, minute: number): number {
  return createHmac('sha256', secret).update(`${address}:${port}:${minute}`).digest().readUInt32BE(0);
}

/** Whether a conclusion's cookie is the one given this minute or the last (a handshake straddling a minute). */
export function cookieValid(secret: Buffer, address: string, port: number, nowMs: number, cookie: number): boolean {
  const minute = Math.floor(nowMs / 60_000);
  return cookie === synCookie(secret, address, port, minute) || cookie === synCookie(secret, address, port, minute - 1);
}

/** The peer's address in the handshake's 16 bytes, as libsrt writes an IPv4 address (a host-order word sent big-endian). */
export function peerIpField(address: string): Buffer {
  const out = Buffer.alloc(16);
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (v4) for (let i = 0; i < 4; i++) out[3 - i] = Number(v4[i + 1]);
  return out;
}

/** The listener's answer to an induction: HSv5, the magic, a cookie. */
export function inductionResponse(request: Handshake, socketId: number, cookie: number, peerIp: Buffer): Handshake {
  return {
    version: 5,
    encryption: 0,
    extensionField: SRT_MAGIC,
    isn: request.isn,
    mss: request.mss,
    flowWindow: request.flowWindow,
    type: HandshakeType.INDUCTION,
    socketId,
    cookie,
    peerIp,
    extensions: [],
  };
}

/** A refusal: the request sent back with its type set to the rejection (1000 + reason). */
export function rejection(request: Handshake, reason: number, socketId: number): Handshake {
  return { ...request, type: REJECTION_BASE + reason, socketId, extensions: [] };
}

/**
 * Reads a caller's HSv5 conclusion: HSREQ (live mode, TSBPD), the stream id, the
 * keying material against our passphrase. Refuses what the relay cannot take with
 * libsrt's reason for it; otherwise the settings of the connection and its answer.
 */
export function readConclusion(request: Handshake, settings: ListenerSettings): AcceptedConclusion | RefusedConclusion {
  const refuse = (reason: number, message: string): RefusedConclusion => ({ ok: false, reason, message });
  if (request.version < 5) return refuse(SrtReject.VERSION, `handshake version ${request.version}: the relay speaks HSv5 (SRT 1.3 and later)`);
  const find = (type: number): HandshakeExtension | undefined => request.extensions.find((e) => e.type === type);
  const hsreqExt = find(SrtCommand.HSREQ);
  if (!(request.extensionField & HsExt.HSREQ) || !hsreqExt) return refuse(SrtReject.ROGUE, 'a conclusion without HSREQ');
  let hsreq;
  try {
    hsreq = readHsReq(hsreqExt.content);
  } catch (err) {
    return refuse(SrtReject.ROGUE, (err as Error).message);
  }
  if (hsreq.flags & SrtFlag.STREAM) return refuse(SrtReject.MESSAGEAPI, 'stream (file) transmission: the relay takes live mode');
  if (!(hsreq.flags & SrtFlag.TSBPDSND)) return refuse(SrtReject.MESSAGEAPI, 'a sender without TSBPD: the relay takes live mode');
  const congestion = find(SrtCommand.CONGESTION);
  if (congestion && readStringExtension(congestion.content) !== 'live')
    return refuse(SrtReject.CONGESTION, `congestion control "${readStringExtension(congestion.content)}": the relay takes live`);
  if (find(SrtCommand.FILTER)) return refuse(SrtReject.FILTER, 'packet filters (FEC) are not supported');
  if (find(SrtCommand.GROUP)) return refuse(SrtReject.GROUP, 'socket groups (bonding) are not supported');
  const sid = find(SrtCommand.SID);
  const streamId = sid ? readStringExtension(sid.content) : '';
  if (streamId.length > MAX_STREAM_ID) return refuse(SrtReject.BAD_REQUEST, `a stream id of ${streamId.length} characters`);
  const km = find(SrtCommand.KMREQ);
  let decryptor: SrtDecryptor | undefined;
  if (km && !settings.passphrase) return refuse(SrtReject.UNSECURE, 'the caller encrypts; the listener has no passphrase');
  if (!km && settings.passphrase) return refuse(SrtReject.UNSECURE, 'the listener requires encryption (srt.passphrase); the caller sent no keys');
  if (km) {
    try {
      decryptor = new SrtDecryptor(readKeyingMaterial(km.content, settings.passphrase));
    } catch (err) {
      if (!(err instanceof SrtCryptoError)) throw err;
      const reason = err.reason === 'badsecret' ? SrtReject.BADSECRET : err.reason === 'unsupported' ? SrtReject.CRYPTO : SrtReject.ROGUE;
      return refuse(reason, err.message);
    }
  }
  const latencyMs = Math.max(settings.latencyMs, hsreq.senderLatency);
  const peerLatencyMs = Math.max(settings.latencyMs, hsreq.receiverLatency);
  const mss = Math.min(request.mss, settings.mss);
  return {
    ok: true,
    streamId,
    callerSocketId: request.socketId,
    isn: request.isn,
    latencyMs,
    peerLatencyMs,
    mss,
    decryptor,
    response: (socketId) => ({
      version: 5,
      encryption: km ? km.content[15]! / 2 : 0, // PBKEYLEN / 8: the KM's key length is in 4-byte words
      extensionField: HsExt.HSREQ | (km ? HsExt.KMREQ : 0),
      isn: request.isn,
      mss,
      flowWindow: settings.flowWindow,
      type: HandshakeType.CONCLUSION,
      socketId,
      cookie: 0,
      peerIp: request.peerIp,
      extensions: [
        {
          type: SrtCommand.HSRSP,
          content: writeHsReq({ version: SRT_VERSION, flags: RESPONSE_FLAGS, receiverLatency: latencyMs, senderLatency: peerLatencyMs }),
        },
        ...(km ? [{ type: SrtCommand.KMRSP, content: km.content }] : []),
      ],
    }),
  };
}
