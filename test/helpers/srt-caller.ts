import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { newKeyingMaterial, writeKeyingMaterial } from '../../server/origin/ingest/srt/srt-crypto.ts';
import {
  ControlType,
  HandshakeType,
  HsExt,
  readHandshake,
  readPacket,
  REJECTION_BASE,
  SrtCommand,
  SrtFlag,
  writeControl,
  writeHandshake,
  writeHsReq,
  writeStringExtension,
  type Handshake,
} from '../../server/origin/ingest/srt/srt-packet.ts';

export type SrtHandshakeResult = { accepted: true; socketId: number; latencyMs: number; isn: number } | { accepted: false; reason: number };

/** An accepted connection kept open: send raw packets on it (fuzzing), then close it. */
export interface SrtOpenConnection {
  socketId: number;
  isn: number;
  send(packet: Buffer): void;
  close(): void;
}

/**
 * A bare SRT caller for tests: it does the HSv5 handshake (induction, then conclusion with
 * the stream id and, with a passphrase, a KMREQ) and says what the listener answered, as the
 * rejection reason libsrt would report, which ffmpeg does not print. A connection it opened
 * is shut down at once.
 */
export async function srtHandshake(
  port: number,
  streamId: string,
  options: { passphrase?: string; host?: string; timeoutMs?: number } = {},
): Promise<SrtHandshakeResult> {
  const { result, connection } = await srtOpen(port, streamId, options);
  connection?.close();
  return result;
}

/** The handshake, and when accepted the connection left open. */
export async function srtOpen(
  port: number,
  streamId: string,
  options: { passphrase?: string; host?: string; timeoutMs?: number } = {},
): Promise<{ result: SrtHandshakeResult; connection?: SrtOpenConnection }> {
  const host = options.host ?? '127.0.0.1';
  const socket = dgram.createSocket('udp4');
  const mySocketId = randomInt(1, 0x7fffffff);
  const isn = randomInt(0, 0x7fffffff);
  const send = (hs: Handshake) => socket.send(writeControl(ControlType.HANDSHAKE, 0, 0, 0, 0, writeHandshake(hs)), port, host);
  const base: Handshake = {
    version: 4,
    encryption: 0,
    extensionField: 2,
    isn,
    mss: 1500,
    flowWindow: 8192,
    type: HandshakeType.INDUCTION,
    socketId: mySocketId,
    cookie: 0,
    peerIp: Buffer.alloc(16),
    extensions: [],
  };
  const next = () =>
    new Promise<Handshake>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SRT handshake answer from ${host}:${port}`)), options.timeoutMs ?? 3000);
      socket.once('message', (msg) => {
        clearTimeout(timer);
        const p = readPacket(msg);
        if (p.kind !== 'control' || p.type !== ControlType.HANDSHAKE) return reject(new Error('not a handshake'));
        resolve(readHandshake(p.body));
      });
    });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  let keep = false;
  try {
    send(base);
    const induction = await next();
    const extensions = [
      {
        type: SrtCommand.HSREQ,
        content: writeHsReq({
          version: 0x010501,
          flags: SrtFlag.TSBPDSND | SrtFlag.TSBPDRCV | SrtFlag.HAICRYPT | SrtFlag.TLPKTDROP | SrtFlag.NAKREPORT | SrtFlag.REXMITFLG,
          receiverLatency: 120,
          senderLatency: 120,
        }),
      },
      { type: SrtCommand.SID, content: writeStringExtension(streamId) },
      ...(options.passphrase ? [{ type: SrtCommand.KMREQ, content: writeKeyingMaterial(newKeyingMaterial(16), options.passphrase) }] : []),
    ];
    send({
      ...base,
      version: 5,
      extensionField: HsExt.HSREQ | HsExt.CONFIG | (options.passphrase ? HsExt.KMREQ : 0),
      type: HandshakeType.CONCLUSION,
      cookie: induction.cookie,
      extensions,
    });
    const answer = await next();
    if (answer.type >= REJECTION_BASE) return { result: { accepted: false, reason: answer.type - REJECTION_BASE } };
    const hsrsp = answer.extensions.find((e) => e.type === SrtCommand.HSRSP);
    keep = true;
    socket.on('message', () => {}); // ACKs, NAKs, keepalives: not read
    let closed = false;
    const connection: SrtOpenConnection = {
      socketId: answer.socketId,
      isn,
      send: (packet) => !closed && socket.send(packet, port, host),
      close: () => {
        if (closed) return;
        closed = true;
        socket.send(writeControl(ControlType.SHUTDOWN, 0, 0, 0, answer.socketId, Buffer.alloc(4)), port, host, () => socket.close());
      },
    };
    return { result: { accepted: true, socketId: answer.socketId, latencyMs: hsrsp ? hsrsp.content.readUInt16BE(8) : 0, isn }, connection };
  } finally {
    if (!keep) socket.close();
  }
}
