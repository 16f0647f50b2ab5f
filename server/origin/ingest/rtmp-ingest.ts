/**
 * RTMP ingest: the one file that touches node-media-server.
 *
 * It uses NMS's protocol layer (handshake, chunk stream, AMF commands) and keeps
 * its session and server layers out: those bring a JSON store on disk, an HTTP
 * server, `process.exit(1)` on a taken port, a 30 s publish grace window and a
 * debug-level console logger. Sockets, limits and timeouts are ours; every call
 * into the parser is guarded so a malformed stream closes one connection, never
 * the process.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import Rtmp from 'node-media-server/src/protocol/rtmp.js';
import nmsLogger from 'node-media-server/src/core/logger.js';
import { ConnectionsPerAddress } from '../../core/http/connections-per-address.ts';
import { asRelayError, RelayError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { FlvFrameReader } from '../../core/media/flv/flv-frame-reader.ts';
import type { IngestAdapter, IngestGateway, PublisherControl } from './ingest.ts';

interface PublishRequest {
  app: string;
  /** The RTMP stream name: for us, the secret stream key. Never log it. */
  key: string;
  remote: string;
  control: PublisherControl;
}

/** What a connection hands its accepted publisher's FLV tags to. */
interface PublishSink {
  /** An FLV tag (type 8 audio, 9 video, 18 script). `body` is reused after the call. Throw a RelayError to disconnect. */
  tag(type: number, timestampMs: number, body: Buffer, receivedAt: number): void;
  /** The connection is gone (the publisher left, failed, or was disconnected). */
  closed(reason: RelayError | undefined): void;
}

/** RTMPS: RTMP inside TLS, with a certificate that is reloaded when its files change. */
export interface RtmpsOptions {
  certFile: string;
  keyFile: string;
  /** How often the files are checked for a change (ms). */
  certCheckMs: number;
}

export interface RtmpIngestOptions {
  host: string;
  port: number;
  /** `rtmps` with `tls`: the same RTMP inside TLS, on its own port. */
  protocol?: 'rtmp' | 'rtmps';
  tls?: RtmpsOptions;
  /** The RTMP application publishers use (`rtmp://host/<app>`). */
  app: string;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  /** A publisher sending no media for this long is disconnected (PUBLISHER_SILENT). */
  mediaTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxMessageBytes: number;
  log: Logger;
}

/** What each connection needs of its listener. */
interface ConnectionOptions extends RtmpIngestOptions {
  /** Decide on a publish: a sink (possibly later), or throw/reject with a RelayError. */
  onPublish: (request: PublishRequest) => Promise<PublishSink>;
  /** A publisher or a connection was refused. */
  onRefused: (reason: RelayError) => void;
}

const MAX_CHUNK_STREAMS = 64;
const MAX_TAGS_WHILE_DECIDING = 512;
/** Buffers of the other chunk streams (audio, commands) beside the largest message. */
const MESSAGE_BUFFERS_SLACK = 1024 * 1024;
/** Media that arrives while a publish is being decided is kept up to this many bytes. */
const MAX_BYTES_WHILE_DECIDING = 32 * 1024 * 1024;
/** Before a publish names a key, messages are commands: small. Nobody unauthenticated gets to make us allocate more. */
const MAX_MESSAGE_BEFORE_PUBLISH = 64 * 1024;
const TAG_TYPES = new Set([8, 9, 18]);

// NMS forces a debug-level console logger on import; nothing it says reaches the console.
nmsLogger.level = 'error';
nmsLogger.log = () => {};

/**
 * The RTMP listener, or with `tls` the RTMPS one: an ingest adapter of the origin.
 * Both take the same limits and timeouts; RTMPS adds the TLS handshake's own
 * (garbage, plain RTMP and slow handshakes are refused with TLS_HANDSHAKE_FAILED).
 */
export class RtmpIngest implements IngestAdapter {
  readonly protocol: 'rtmp' | 'rtmps';
  private server: net.Server | tls.Server | undefined;
  /** The certificate in use (RTMPS): its files' contents, to tell a real change from a touch. */
  private certificate: { cert: Buffer; key: Buffer } | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly perAddress: ConnectionsPerAddress;
  private lastWarned = 0;
  readonly stats = { connections: 0, refused: 0, protocolErrors: 0 };

  private readonly options: ConnectionOptions;

  constructor(
    options: RtmpIngestOptions,
    private readonly gateway: IngestGateway,
  ) {
    this.protocol = options.tls ? 'rtmps' : 'rtmp';
    this.perAddress = new ConnectionsPerAddress(options.maxConnectionsPerAddress);
    this.options = { ...options, onPublish: (req) => this.publish(req), onRefused: (reason) => gateway.refused(this.protocol, reason) };
  }

  start(): Promise<void> {
    return this.listen();
  }

  /**
   * A publish request: the application, then the key names the stream, then the
   * origin opens it. The FLV tags it sends become frames for the publication.
   */
  private async publish(req: PublishRequest): Promise<PublishSink> {
    const { app, port } = this.options;
    const protocol = this.protocol;
    if (req.app !== app) throw new RelayError('RTMP_APP_UNKNOWN', `use ${protocol}://<host>:${port}/${app}`);
    const stream = this.gateway.authenticate(req.key, { protocol, remote: req.remote });
    const publication = await this.gateway.open({ stream, remote: req.remote, protocol, control: req.control });
    const log = this.options.log.child({ stream });
    const reader = new FlvFrameReader((notice) => {
      if (notice.type === 'unsupported') {
        log.warn({ code: 'CODEC_UNSUPPORTED', track: notice.track, codec: notice.codec }, 'track dropped: codec not supported (H.264, HEVC, AV1 and AAC are)');
      } else {
        const { video, audio } = notice.init;
        log.info(
          {
            video: video && `${video.codecString} ${video.width}x${video.height}`,
            audio: audio && `${audio.codecString} ${audio.sampleRate} Hz ${audio.channels} ch`,
          },
          'stream configuration',
        );
      }
    });
    return {
      tag: (type, ts, body, receivedAt) => {
        const frame = reader.push(type, ts, body, receivedAt);
        if (frame) publication.frame(frame);
      },
      closed: (reason) => publication.close(reason),
    };
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  get port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  listen(): Promise<void> {
    const server = this.options.tls ? this.tlsServer(this.options.tls) : net.createServer((socket) => this.admit(socket) && this.serve(socket));
    server.maxConnections = this.options.maxConnections;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new RelayError(
            'CONFIG_INVALID',
            err.code === 'EADDRINUSE'
              ? `${this.protocol}.port ${this.options.port} is already in use on ${this.options.host}`
              : `cannot listen for ${this.protocol.toUpperCase()} on ${this.options.host}:${this.options.port}: ${err.message}`,
          ),
        );
      });
      server.listen(this.options.port, this.options.host, () => {
        server.on('error', (err) => this.options.log.error({ err }, 'RTMP listener error'));
        server.on('drop', () => {
          this.stats.refused++;
          this.options.onRefused(new RelayError('RTMP_TOO_MANY_CONNECTIONS'));
          this.options.log.warn({ code: 'RTMP_TOO_MANY_CONNECTIONS', max: this.options.maxConnections }, 'RTMP connection refused');
        });
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.options.tls) {
      unwatchFile(this.options.tls.certFile);
      unwatchFile(this.options.tls.keyFile);
    }
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * The TLS listener: the per-address limit applies to the raw connection, before
   * any TLS work; a connection becomes an RTMP one once its handshake is done.
   */
  private tlsServer(options: RtmpsOptions): tls.Server {
    this.certificate = readCertificate(options);
    const server = tls.createServer({
      ...this.certificate,
      minVersion: 'TLSv1.2',
      handshakeTimeout: this.options.handshakeTimeoutMs,
    });
    server.on('connection', (raw: net.Socket) => {
      if (!this.admit(raw)) return;
      raw.on('error', () => {}); // a reset during the handshake: 'tlsClientError' says it
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => this.serve(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      socket.destroy();
      // A reset is the client leaving (or our own per-address refusal, counted already), not bad input.
      if (err.code === 'ECONNRESET') return;
      this.stats.protocolErrors++;
      const reason = new RelayError('TLS_HANDSHAKE_FAILED', err.code ?? err.message);
      this.options.onRefused(reason);
      if (Date.now() - this.lastWarned > 1000) {
        this.lastWarned = Date.now();
        this.options.log.warn({ code: reason.code, remote: socket.remoteAddress, reason: reason.message }, 'RTMPS connection refused');
      }
    });
    // Certificates are renewed in place (certbot, cert-manager): check the files and swap the context, no restart.
    const reload = () => {
      let next;
      try {
        next = readCertificate(options);
      } catch (err) {
        this.options.log.warn({ code: 'CONFIG_INVALID', err: (err as Error).message }, 'RTMPS certificate not reloaded; the previous one stays in use');
        return;
      }
      if (this.certificate && next.cert.equals(this.certificate.cert) && next.key.equals(this.certificate.key)) return;
      this.certificate = next;
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
      this.options.log.info(certificateSummary(next.cert), 'RTMPS certificate reloaded');
    };
    watchFile(options.certFile, { interval: options.certCheckMs, persistent: false }, reload);
    watchFile(options.keyFile, { interval: options.certCheckMs, persistent: false }, reload);
    this.options.log.info(certificateSummary(this.certificate.cert), 'RTMPS certificate');
    return server;
  }

  /** The per-address limit; true when the connection may go on. */
  private admit(socket: net.Socket): boolean {
    if (!this.perAddress.admit(socket)) {
      this.stats.refused++;
      this.options.onRefused(new RelayError('RTMP_TOO_MANY_CONNECTIONS'));
      if (Date.now() - this.lastWarned > 1000) {
        // a flood must not become a log flood
        this.lastWarned = Date.now();
        this.options.log.warn(
          { code: 'RTMP_TOO_MANY_CONNECTIONS', remote: socket.remoteAddress, max: this.options.maxConnectionsPerAddress, refusedSoFar: this.stats.refused },
          'RTMP connection refused: too many from one address',
        );
      }
      socket.on('error', () => {});
      socket.destroy();
      return false;
    }
    this.stats.connections++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return true;
  }

  /** An admitted connection (over TLS: once its handshake is done) speaks RTMP. */
  private serve(socket: net.Socket): void {
    socket.setNoDelay(true);
    new RtmpConnection(socket, this.options, this.stats).start();
  }
}

/** The certificate chain and key files, checked to belong together; CONFIG_INVALID with the reason otherwise. */
function readCertificate({ certFile, keyFile }: RtmpsOptions): { cert: Buffer; key: Buffer } {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (err) {
    throw new RelayError('CONFIG_INVALID', `cannot read the RTMPS certificate or key: ${(err as Error).message}`);
  }
  try {
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new RelayError('CONFIG_INVALID', `rtmps.certFile ${certFile} and rtmps.keyFile ${keyFile}: ${(err as Error).message}`);
  }
  return { cert, key };
}

function certificateSummary(cert: Buffer): Record<string, string> {
  const x509 = new X509Certificate(cert);
  return { subject: x509.subject.replace(/\n/g, ', '), altNames: x509.subjectAltName ?? '', validTo: x509.validTo };
}

type State = 'handshake' | 'deciding' | 'publishing' | 'closed';

class RtmpConnection implements PublisherControl {
  private readonly rtmp = new Rtmp();
  private readonly remote: string;
  state: State = 'handshake';
  private earlyBytes = 0;
  private sink: PublishSink | undefined;
  private readonly early: { type: number; ts: number; body: Buffer; at: number }[] = [];
  private readonly handshakeTimer: NodeJS.Timeout;
  /** While publishing: checks that media keeps coming. */
  private mediaWatch: NodeJS.Timeout | undefined;
  private lastMediaAt = 0;
  private pausedByUs = false;
  private readonly log: Logger;

  constructor(
    private readonly socket: net.Socket,
    private readonly options: ConnectionOptions,
    private readonly stats: RtmpIngest['stats'],
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = options.log.child({ remote: this.remote });
    this.handshakeTimer = setTimeout(() => this.fail(new RelayError('RTMP_HANDSHAKE_TIMEOUT')), options.handshakeTimeoutMs);
  }

  start(): void {
    const rtmp = this.rtmp;
    const maxMessageBytes = this.options.maxMessageBytes;
    const handshaking = () => this.state === 'handshake';
    // Limits the parser does not have: message size, number of chunk streams, and the
    // buffers all its chunk streams hold at once (each keeps the largest message it saw:
    // 64 streams of 16 MiB would be 1 GiB for one connection).
    rtmp.packetAlloc = function (this: Rtmp) {
      const length = this.parserPacket.header.length;
      const max = handshaking() ? MAX_MESSAGE_BEFORE_PUBLISH : maxMessageBytes;
      if (length > max)
        throw new RelayError('RTMP_PROTOCOL_ERROR', `RTMP message of ${length} bytes exceeds ${max}${handshaking() ? ' before publishing' : ''}`);
      if (this.inPackets.size > MAX_CHUNK_STREAMS) throw new RelayError('RTMP_PROTOCOL_ERROR', 'too many RTMP chunk streams');
      if (this.parserPacket.capacity < length) {
        let held = 0;
        for (const p of this.inPackets.values()) if (p !== this.parserPacket) held += p.capacity;
        if (held + length > max + MESSAGE_BUFFERS_SLACK)
          throw new RelayError('RTMP_PROTOCOL_ERROR', `RTMP message buffers of ${held + length} bytes exceed ${max + MESSAGE_BUFFERS_SLACK}`);
      }
      Rtmp.prototype.packetAlloc.call(this);
    };
    rtmp.controlHandler = function (this: Rtmp) {
      Rtmp.prototype.controlHandler.call(this);
      if (!(this.inChunkSize >= 1 && this.inChunkSize <= 0x7fffffff)) throw new RelayError('RTMP_PROTOCOL_ERROR', `chunk size ${this.inChunkSize}`);
    };
    // "Publish.Start" waits for our decision (the key, the lease).
    rtmp.respondPublish = () => {};
    rtmp.onOutputCallback = (buffer) => {
      if (!this.socket.destroyed) this.socket.write(buffer);
    };
    rtmp.onConnectCallback = () => {};
    rtmp.onPlayCallback = () => this.refusePlay();
    rtmp.onPushCallback = () => this.decide();
    rtmp.onPacketCallback = (packet) => this.packet(packet.codec_type, packet.dts, packet.data.subarray(0, packet.size));
    this.socket.on('data', (data: Buffer) => {
      if (this.state === 'closed') return;
      let err: string | null;
      try {
        err = rtmp.parserData(data);
      } catch (e) {
        this.fail(e instanceof RelayError ? e : new RelayError('RTMP_PROTOCOL_ERROR', (e as Error).message));
        return;
      }
      if (err) this.fail(new RelayError('RTMP_PROTOCOL_ERROR', err));
    });
    this.socket.setTimeout(this.options.idleTimeoutMs, () => this.fail(new RelayError('RTMP_PROTOCOL_ERROR', `no data for ${this.options.idleTimeoutMs} ms`)));
    this.socket.on('error', () => {});
    this.socket.on('close', () => this.finish(undefined));
  }

  /** Back-pressure from the bus: stop reading. The publisher is not silent while we are not listening. */
  pause(): void {
    this.pausedByUs = true;
    this.socket.pause();
  }

  resume(): void {
    this.pausedByUs = false;
    this.lastMediaAt = performance.now();
    this.socket.resume();
  }

  disconnect(reason: RelayError): void {
    this.fail(reason);
  }

  private decide(): void {
    if (this.state !== 'handshake') {
      this.fail(new RelayError('RTMP_PROTOCOL_ERROR', 'a second publish on one connection'));
      return;
    }
    this.state = 'deciding';
    const request: PublishRequest = { app: this.rtmp.streamApp ?? '', key: this.rtmp.streamName ?? '', remote: this.remote, control: this };
    this.socket.pause();
    this.options.onPublish(request).then(
      (sink) => this.accepted(sink),
      (err) => this.refusePublish(err),
    );
  }

  private accepted(sink: PublishSink): void {
    if (this.state !== 'deciding') {
      sink.closed(undefined);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.sink = sink;
    this.state = 'publishing';
    this.watchMedia();
    Rtmp.prototype.respondPublish.call(this.rtmp);
    for (const t of this.early.splice(0)) this.deliver(t.type, t.ts, t.body, t.at);
    this.socket.resume();
  }

  private packet(type: number, timestamp: number, body: Buffer): void {
    if (!TAG_TYPES.has(type)) return;
    const at = performance.timeOrigin + performance.now();
    if (this.state === 'publishing') {
      this.deliver(type, timestamp, body, at);
    } else if (this.state === 'deciding') {
      this.earlyBytes += body.length;
      if (this.early.length >= MAX_TAGS_WHILE_DECIDING || this.earlyBytes > MAX_BYTES_WHILE_DECIDING)
        throw new RelayError('RTMP_PROTOCOL_ERROR', 'too much media before the publish was accepted');
      this.early.push({ type, ts: timestamp, body: Buffer.from(body), at });
    } else {
      throw new RelayError('RTMP_PROTOCOL_ERROR', 'media before publish');
    }
  }

  /**
   * A publisher that sends no audio or video for `mediaTimeoutMs` is gone, even if
   * its connection stays open (a frozen encoder, a network that died without a FIN):
   * its stream ends now rather than after the idle timeout.
   */
  private watchMedia(): void {
    const { mediaTimeoutMs } = this.options;
    this.lastMediaAt = performance.now();
    this.mediaWatch = setInterval(
      () => {
        if (this.pausedByUs) return;
        const silentMs = performance.now() - this.lastMediaAt;
        if (silentMs > mediaTimeoutMs) this.fail(new RelayError('PUBLISHER_SILENT', `no audio or video for ${Math.round(silentMs)} ms`));
      },
      Math.min(1000, Math.max(50, mediaTimeoutMs / 4)),
    );
  }

  private deliver(type: number, timestamp: number, body: Buffer, at: number): void {
    if (type !== 18) this.lastMediaAt = performance.now();
    try {
      this.sink!.tag(type, timestamp, body, at);
    } catch (err) {
      this.fail(err instanceof RelayError ? err : new RelayError('RTMP_PROTOCOL_ERROR', (err as Error).message));
    }
  }

  private refusePublish(err: unknown): void {
    const reason = asRelayError(err);
    this.stats.refused++;
    this.options.onRefused(reason);
    const status = reason.code === 'STREAM_ALREADY_PUBLISHING' ? 'NetStream.Publish.BadName' : 'NetStream.Publish.Denied';
    this.rtmp.sendStatusMessage(this.rtmp.streamId, 'error', status, reason.toClientString());
    this.fail(reason, true);
  }

  private refusePlay(): void {
    const reason = new RelayError('RTMP_PLAY_REFUSED');
    this.rtmp.sendStatusMessage(this.rtmp.streamId, 'error', 'NetStream.Play.Failed', reason.toClientString());
    this.fail(reason, true);
  }

  /** Ends the connection; `graceful` lets a status message reach the client first. */
  private fail(reason: RelayError, graceful = false): void {
    if (this.state === 'closed') return;
    if (reason.code === 'RTMP_PROTOCOL_ERROR' || reason.code === 'RTMP_HANDSHAKE_TIMEOUT') this.stats.protocolErrors++;
    const level = reason.code === 'RTMP_HANDSHAKE_TIMEOUT' ? 'info' : 'warn';
    this.log[level]({ code: reason.code, reason: reason.message }, 'RTMP connection closed');
    this.finish(reason);
    if (graceful) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
  }

  private finish(reason: RelayError | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    clearInterval(this.mediaWatch);
    this.early.length = 0;
    const sink = this.sink;
    this.sink = undefined;
    sink?.closed(reason);
  }
}
