/**
 * SRT ingest: the UDP adapter around the pure SRT stages (packets, handshake,
 * receiver) and the MPEG-TS demuxer. One socket serves every caller; each accepted
 * caller is a session keyed by the socket id we gave it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { Gauge, type Registry } from 'prom-client';
import { asRelayError, RelayError } from '../../../core/errors.ts';
import type { Logger } from '../../../core/log.ts';
import { TsDemuxer } from '../../../core/media/mpegts/ts-demuxer.ts';
import type { IngestAdapter, IngestGateway, IngestPublication, PublisherControl } from '../ingest.ts';
import { codeOfHandshakeRefusal, readStreamId, srtRejectionOf } from './srt-access.ts';
import { cookieValid, inductionResponse, peerIpField, readConclusion, rejection, synCookie, type AcceptedConclusion } from './srt-handshake.ts';
import {
  ControlType,
  HandshakeType,
  readHandshake,
  readPacket,
  SrtPacketError,
  writeControl,
  writeHandshake,
  type Handshake,
  type SrtPacket,
} from './srt-packet.ts';
import { SrtReceiver } from './srt-receiver.ts';

export interface SrtIngestOptions {
  host: string;
  port: number;
  latencyMs: number;
  passphrase: string;
  idleTimeoutMs: number;
  mediaTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  log: Logger;
  registry?: Registry;
}

/** The MSS we take (an Ethernet MTU); the caller's smaller one wins. */
const MSS = 1500;
/** Receive buffer, in packets (a power of two): about 10 s at 10 Mbit/s. */
const BUFFER_PACKETS = 8192;
/** How often sessions deliver due packets and send their ACKs (ms). */
const TICK_MS = 5;
/** A refusal is answered again to a repeated conclusion for this long. */
const REFUSAL_MEMORY_MS = 10_000;

type Decision = { state: 'deciding' } | { state: 'refused'; response: Buffer; at: number } | { state: 'accepted'; session: SrtSession };

/**
 * The SRT listener: an ingest adapter of the origin. Callers publish MPEG-TS in SRT
 * live mode; the stream key travels in the stream id. Refusals go back in the
 * handshake with libsrt's rejection reasons (srtRejectionOf), and are counted by the
 * relay's stable code.
 */
export class SrtIngest implements IngestAdapter {
  readonly protocol = 'srt' as const;
  private socket: dgram.Socket | undefined;
  private bound = false;
  private readonly secret = randomBytes(32);
  private readonly listenerId = randomInt(1, 0x7fffffff);
  /** Accepted callers, by the socket id we gave them. */
  private readonly sessions = new Map<number, SrtSession>();
  /** Conclusions being decided or decided, by `address:port:callerSocketId` (a repeated conclusion gets the same answer). */
  private readonly decisions = new Map<string, Decision>();
  private readonly perAddress = new Map<string, number>();
  private ticker: NodeJS.Timeout | undefined;
  private lastWarned = 0;
  readonly stats = { connections: 0, refused: 0, badPackets: 0, strayPackets: 0 };

  constructor(
    private readonly options: SrtIngestOptions,
    private readonly gateway: IngestGateway,
  ) {
    if (options.registry) createSrtMetrics(options.registry, () => this.sessions.values());
  }

  get listening(): boolean {
    return this.bound;
  }

  get port(): number {
    return this.bound ? this.socket!.address().port : 0;
  }

  /** Live sessions (the dashboard and metrics read their receivers' figures). */
  get live(): Iterable<SrtSession> {
    return this.sessions.values();
  }

  start(): Promise<void> {
    const socket = dgram.createSocket({ type: this.options.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    this.socket = socket;
    return new Promise((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new RelayError(
            'CONFIG_INVALID',
            err.code === 'EADDRINUSE'
              ? `srt.port ${this.options.port} is already in use on ${this.options.host} (set another srt.port, or srt.enabled false)`
              : `cannot listen for SRT on ${this.options.host}:${this.options.port}: ${err.message}`,
          ),
        );
      });
      socket.bind(this.options.port, this.options.host, () => {
        this.bound = true;
        socket.on('error', (err) => this.options.log.error({ err }, 'SRT socket error'));
        socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address, rinfo.port));
        this.options.log.info({ port: this.port, latencyMs: this.options.latencyMs, encrypted: this.options.passphrase !== '' }, 'SRT ingest listening');
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const session of [...this.sessions.values()]) session.disconnect(new RelayError('ORIGIN_SHUTTING_DOWN'));
    clearInterval(this.ticker);
    this.ticker = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket && this.bound) {
      this.bound = false;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
  }

  /** @internal Sends a packet to a caller. */
  send(packet: Buffer, address: string, port: number): void {
    this.socket?.send(packet, port, address);
  }

  private receive(msg: Buffer, address: string, port: number): void {
    try {
      this.receiveOrThrow(msg, address, port);
    } catch (err) {
      // A bug, not bad input (that is counted, or refused): logged, and the listener serves everyone else.
      if (Date.now() - this.lastWarned > 1000) {
        this.lastWarned = Date.now();
        this.options.log.error({ code: 'INTERNAL', err, remote: `${address}:${port}` }, 'SRT packet handling failed');
      }
    }
  }

  private receiveOrThrow(msg: Buffer, address: string, port: number): void {
    let packet: SrtPacket;
    try {
      packet = readPacket(msg);
      if (packet.kind === 'control' && packet.type === ControlType.HANDSHAKE) {
        this.handshake(readHandshake(packet.body), packet.timestamp, address, port);
        return;
      }
    } catch (err) {
      if (!(err instanceof SrtPacketError)) throw err;
      this.stats.badPackets++;
      return;
    }
    const session = this.sessions.get(packet.destination);
    if (!session || session.address !== address || session.port !== port) {
      this.stats.strayPackets++;
      return;
    }
    session.receive(packet, performance.now());
  }

  private handshake(hs: Handshake, timestamp: number, address: string, port: number): void {
    const now = Date.now();
    if (hs.type === HandshakeType.INDUCTION) {
      const cookie = synCookie(this.secret, address, port, Math.floor(now / 60_000));
      this.sendHandshake(inductionResponse(hs, this.listenerId, cookie, peerIpField(address)), hs.socketId, address, port);
      return;
    }
    if (hs.type !== HandshakeType.CONCLUSION) return; // rendezvous and the rest: not for a listener
    const id = `${address}:${port}:${hs.socketId}`;
    const decided = this.decisions.get(id);
    if (decided?.state === 'deciding') return; // the caller repeats itself while the origin decides
    if (decided?.state === 'accepted') {
      decided.session.answerAgain();
      return;
    }
    if (decided?.state === 'refused' && now - decided.at < REFUSAL_MEMORY_MS) {
      this.send(decided.response, address, port);
      return;
    }
    // A conclusion without our cookie never came through an induction from this address: no answer (no amplification).
    if (!cookieValid(this.secret, address, port, now, hs.cookie)) return;
    const refuse = (reason: RelayError, srtReason = srtRejectionOf(reason.code)) => {
      this.stats.refused++;
      this.gateway.refused(this.protocol, reason);
      const response = this.handshakePacket(rejection(hs, srtReason, this.listenerId), hs.socketId);
      this.decisions.set(id, { state: 'refused', response, at: now });
      this.send(response, address, port);
      this.forgetLater(id);
      if (Date.now() - this.lastWarned > 1000) {
        this.lastWarned = Date.now();
        this.options.log.warn({ code: reason.code, srtReason, remote: `${address}:${port}`, reason: reason.message }, 'SRT caller refused');
      }
    };
    if (this.sessions.size >= this.options.maxConnections) return refuse(new RelayError('SRT_TOO_MANY_CONNECTIONS'));
    const host = address.replace(/^::ffff:/, '');
    if (this.options.maxConnectionsPerAddress > 0 && (this.perAddress.get(host) ?? 0) >= this.options.maxConnectionsPerAddress)
      return refuse(new RelayError('TOO_MANY_CONNECTIONS', `${this.options.maxConnectionsPerAddress} SRT callers from ${host}`));
    const conclusion = readConclusion(hs, { latencyMs: this.options.latencyMs, passphrase: this.options.passphrase, mss: MSS, flowWindow: BUFFER_PACKETS });
    if (!conclusion.ok) return refuse(new RelayError(codeOfHandshakeRefusal(conclusion.reason), conclusion.message), conclusion.reason);
    const remote = `${address}:${port}`;
    let stream: string;
    try {
      const request = readStreamId(conclusion.streamId);
      stream = this.gateway.authenticate(request.key, { protocol: this.protocol, remote });
      if (request.stream !== undefined && request.stream !== stream) throw new RelayError('STREAM_KEY_INVALID', 'the key is for another stream');
    } catch (err) {
      return refuse(asRelayError(err));
    }
    this.decisions.set(id, { state: 'deciding' });
    this.perAddress.set(host, (this.perAddress.get(host) ?? 0) + 1);
    const arrival = performance.now();
    const session = new SrtSession(this, {
      id: this.newSocketId(),
      address,
      port,
      host,
      stream,
      conclusion,
      peerStart: arrival - timestamp / 1000,
      options: this.options,
    });
    this.gateway.open({ stream, remote, protocol: this.protocol, control: session }).then(
      (publication) => {
        if (!this.bound || session.isClosed) {
          this.released(host);
          this.decisions.delete(id);
          publication.close(new RelayError('ORIGIN_SHUTTING_DOWN'));
          return;
        }
        this.decisions.set(id, { state: 'accepted', session });
        this.sessions.set(session.id, session);
        this.stats.connections++;
        session.start(publication);
        this.ticker ??= setInterval(() => this.tick(), TICK_MS);
      },
      (err: unknown) => {
        this.released(host);
        this.decisions.delete(id);
        refuse(asRelayError(err));
      },
    );
  }

  private newSocketId(): number {
    for (;;) {
      const id = randomInt(1, 0x7fffffff);
      if (id !== this.listenerId && !this.sessions.has(id)) return id;
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const session of this.sessions.values()) session.tick(now);
  }

  /** @internal A session ended: it leaves the tables. */
  ended(session: SrtSession): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    this.released(session.host);
    const id = `${session.address}:${session.port}:${session.callerId}`;
    if (this.decisions.get(id)?.state === 'accepted') this.decisions.delete(id);
    if (this.sessions.size === 0) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  private released(host: string): void {
    const left = (this.perAddress.get(host) ?? 1) - 1;
    if (left > 0) this.perAddress.set(host, left);
    else this.perAddress.delete(host);
  }

  private forgetLater(id: string): void {
    setTimeout(() => {
      if (this.decisions.get(id)?.state === 'refused') this.decisions.delete(id);
    }, REFUSAL_MEMORY_MS).unref();
  }

  /** @internal */
  handshakePacket(hs: Handshake, destination: number): Buffer {
    return writeControl(ControlType.HANDSHAKE, 0, 0, 0, destination, writeHandshake(hs));
  }

  private sendHandshake(hs: Handshake, destination: number, address: string, port: number): void {
    this.send(this.handshakePacket(hs, destination), address, port);
  }
}

interface SessionInit {
  id: number;
  address: string;
  port: number;
  host: string;
  stream: string;
  conclusion: AcceptedConclusion;
  /** Our clock (ms) at the caller's timestamp 0. */
  peerStart: number;
  options: SrtIngestOptions;
}

/** One accepted caller: its receiver, its demuxer, its publication. */
export class SrtSession implements PublisherControl {
  readonly id: number;
  readonly address: string;
  readonly port: number;
  readonly host: string;
  readonly stream: string;
  readonly callerId: number;
  readonly latencyMs: number;
  readonly receiver: SrtReceiver;
  readonly demuxer = new TsDemuxer({ encoder: 'SRT' });
  private publication: IngestPublication | undefined;
  private readonly response: Buffer;
  private lastHeard = performance.now();
  private lastMedia = performance.now();
  private closed = false;
  private readonly log: Logger;
  private readonly settings: SrtIngestOptions;

  constructor(
    private readonly listener: SrtIngest,
    init: SessionInit,
  ) {
    const { conclusion, options } = init;
    this.settings = options;
    this.id = init.id;
    this.address = init.address;
    this.port = init.port;
    this.host = init.host;
    this.stream = init.stream;
    this.callerId = conclusion.callerSocketId;
    this.latencyMs = conclusion.latencyMs;
    this.log = options.log.child({ stream: init.stream, remote: `${init.address}:${init.port}` });
    this.response = listener.handshakePacket(conclusion.response(this.id), this.callerId);
    const now = performance.now();
    this.receiver = new SrtReceiver({
      isn: conclusion.isn,
      latencyMs: conclusion.latencyMs,
      peerSocketId: this.callerId,
      startTime: now,
      peerStart: init.peerStart,
      send: (packet) => listener.send(packet, this.address, this.port),
      deliver: (payload) => this.deliver(payload),
      lost: () => this.demuxer.lost(),
      decryptor: conclusion.decryptor,
      passphrase: options.passphrase || undefined,
      bufferPackets: BUFFER_PACKETS,
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The origin accepted the publisher: the caller gets its answer and may send. */
  start(publication: IngestPublication): void {
    this.publication = publication;
    this.lastHeard = this.lastMedia = performance.now();
    this.answerAgain();
    this.log.info({ latencyMs: this.latencyMs, encrypted: this.settings.passphrase !== '' }, 'SRT publisher connected');
  }

  /** The conclusion's answer, again (the caller did not get it, and repeated its conclusion). */
  answerAgain(): void {
    this.listener.send(this.response, this.address, this.port);
  }

  receive(packet: SrtPacket, now: number): void {
    if (this.closed) return;
    this.lastHeard = now;
    if (packet.kind === 'data') this.receiver.data(packet, now);
    else if (this.receiver.control(packet, now) === 'shutdown') {
      this.receiver.drain();
      this.end(undefined, 'the caller closed the connection');
    }
  }

  tick(now: number): void {
    if (this.closed) return;
    const { idleTimeoutMs, mediaTimeoutMs } = this.settings;
    if (now - this.lastHeard > idleTimeoutMs) {
      this.disconnect(new RelayError('SRT_PEER_IDLE', `nothing for ${Math.round(now - this.lastHeard)} ms`));
      return;
    }
    if (now - this.lastMedia > mediaTimeoutMs) {
      this.disconnect(new RelayError('PUBLISHER_SILENT', `no audio or video for ${Math.round(now - this.lastMedia)} ms`));
      return;
    }
    this.receiver.tick(now);
  }

  private deliver(payload: Buffer): void {
    if (this.closed || !this.publication) return;
    try {
      const frames = this.demuxer.push(payload, performance.timeOrigin + performance.now());
      if (frames.length > 0) this.lastMedia = performance.now();
      for (const frame of frames) this.publication.frame(frame);
    } catch (err) {
      this.disconnect(asRelayError(err));
    }
  }

  /** SRT cannot be paused: the bus publisher's window absorbs bursts (as for WHIP). */
  pause(): void {}
  resume(): void {}

  disconnect(reason: RelayError): void {
    if (this.closed) return;
    this.receiver.shutdown(performance.now());
    this.end(reason, reason.message);
  }

  private end(reason: RelayError | undefined, why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.listener.ended(this);
    const s = this.receiver.stats;
    const level = reason && reason.code !== 'ORIGIN_SHUTTING_DOWN' ? 'warn' : 'info';
    this.log[level](
      {
        code: reason?.code,
        why,
        packets: s.packets,
        lost: s.lost,
        retransmitted: s.retransmitted,
        dropped: s.dropped,
        rttMs: Math.round(s.rttUs / 100) / 10,
        maxLateMs: Math.round(s.maxLateMs * 10) / 10,
        driftMs: Math.round(s.driftMs * 10) / 10,
        videoFrames: this.demuxer.stats.videoFrames,
        audioFrames: this.demuxer.stats.audioFrames,
      },
      'SRT publisher left',
    );
    if (this.publication) {
      try {
        for (const frame of this.demuxer.end(performance.timeOrigin + performance.now())) this.publication.frame(frame);
      } catch (err) {
        // The last picture was unreadable: the stream ends without it.
        this.log.debug({ err: (err as Error).message }, 'the last PES of the stream could not be read');
      }
      this.publication.close(reason);
    }
  }
}

/** Per-stream SRT figures, read from the live sessions at scrape time. */
export function createSrtMetrics(registry: Registry, sessions: () => Iterable<Pick<SrtSession, 'stream' | 'latencyMs' | 'receiver'>>): void {
  const gauge = (name: string, help: string, value: (s: Pick<SrtSession, 'stream' | 'latencyMs' | 'receiver'>) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['stream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of sessions()) this.set({ stream: s.stream }, value(s));
      },
    });
  gauge('relay_srt_rtt_seconds', 'Smoothed round-trip time to the SRT caller, per live stream.', (s) => s.receiver.stats.rttUs / 1e6);
  gauge('relay_srt_latency_seconds', 'SRT latency in force (TSBPD): frames wait this long for retransmissions, per live stream.', (s) => s.latencyMs / 1000);
  gauge('relay_srt_received_packets', 'SRT data packets received since the caller connected, per live stream.', (s) => s.receiver.stats.packets);
  gauge(
    'relay_srt_lost_packets',
    'SRT data packets found missing (reported in NAKs) since the caller connected, per live stream.',
    (s) => s.receiver.stats.lost,
  );
  gauge(
    'relay_srt_retransmitted_packets',
    'SRT data packets received as retransmissions since the caller connected, per live stream.',
    (s) => s.receiver.stats.retransmitted,
  );
  gauge(
    'relay_srt_dropped_packets',
    'SRT data packets given up because they came too late (after the latency) or never, since the caller connected, per live stream.',
    (s) => s.receiver.stats.dropped,
  );
}
