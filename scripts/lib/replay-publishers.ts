/**
 * RTMP publishers that replay an FLV file (made by ffmpeg, OBS-like) in real time,
 * looped, as ffmpeg `-re -stream_loop -1 -c copy` would send it: many in one
 * process (the latency bench), or one whose connection time is known (the takeover
 * bench). One timer sends every due tag of every publisher, in file order.
 */
import net from 'node:net';
import tls from 'node:tls';
import { rtmpC0C1, rtmpHandshakeDone, rtmpPublishCommands } from './stream-checkers.ts';

const CHUNK = 4096;
const CSID: Record<number, number> = { 8: 4, 9: 6, 18: 5 };
const continuation = new Map([4, 5, 6].map((c) => [c, Buffer.from([0xc0 | c])]));
/** Configuration tags (metadata, AVC or Enhanced RTMP and AAC sequence headers) go out once, at the start. */
const isConfig = (t: { type: number; body: Buffer }) =>
  t.type === 18 || (t.type === 9 && (t.body[0]! & 0x80 ? (t.body[0]! & 0x0f) === 0 : t.body[1] === 0)) || (t.type === 8 && t.body[1] === 0);

export interface ReplayPublisher {
  socket: net.Socket;
  /** performance.now() when the TCP connection was asked for, and when the publish commands went out. */
  connectingAt: number;
  publishedAt: number;
  ready: boolean;
  next: number;
  loop: number;
  started: number;
}

export class ReplayPublishers {
  readonly totals = { open: 0, closed: 0, bytes: 0 };
  private readonly publishers: ReplayPublisher[] = [];
  private readonly loopMs: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly tags: { type: number; timestamp: number; body: Buffer }[],
    private readonly base: URL,
    frameMs = 1000 / 30,
  ) {
    /** One loop of the file lasts this long; the next loop's timestamps continue from there. */
    this.loopMs = tags.at(-1)!.timestamp + frameMs;
    this.timer = setInterval(() => this.send(), 5);
  }

  /** A new publisher of `key`; `spreadMs` delays its clock at random (many streams not in step). An `rtmps:` base speaks TLS (any certificate). */
  add(key: string, spreadMs = 0): ReplayPublisher {
    const app = this.base.pathname.split('/')[1]!;
    const secure = this.base.protocol === 'rtmps:';
    const port = Number(this.base.port);
    const socket = secure ? tls.connect({ port, host: this.base.hostname, rejectUnauthorized: false }) : net.connect(port, this.base.hostname);
    const p: ReplayPublisher = { socket, connectingAt: performance.now(), publishedAt: 0, next: 0, loop: 0, started: 0, ready: false };
    let handshake = Buffer.alloc(0);
    socket.setNoDelay(true);
    socket.on(secure ? 'secureConnect' : 'connect', () => socket.write(rtmpC0C1()));
    socket.on('data', (d: Buffer) => {
      if (p.ready) return; // the server's answers are not needed
      handshake = Buffer.concat([handshake, d]);
      const done = rtmpHandshakeDone(handshake);
      if (!done) return;
      socket.write(Buffer.concat([done.c2, rtmpPublishCommands(`${this.base.protocol}//${this.base.host}/${app}`, app, key, CHUNK)]));
      p.ready = true;
      p.publishedAt = performance.now();
      p.started = p.publishedAt - Math.random() * spreadMs;
      this.totals.open++;
      for (const t of this.tags) if (isConfig(t)) this.writeTag(p, t, 0);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (p.ready) this.totals.closed++;
      p.ready = false;
    });
    this.publishers.push(p);
    return p;
  }

  close(): void {
    clearInterval(this.timer);
    for (const p of this.publishers) p.socket.destroy();
  }

  private send(): void {
    const now = performance.now();
    for (const p of this.publishers) {
      if (!p.ready || p.socket.destroyed) continue;
      p.socket.cork();
      for (;;) {
        const tag = this.tags[p.next]!;
        const timestamp = Math.round(tag.timestamp + p.loop * this.loopMs);
        if (p.started + timestamp > now) break;
        if (!isConfig(tag)) this.writeTag(p, tag, timestamp); // configuration went out at the start
        if (++p.next === this.tags.length) {
          p.next = 0;
          p.loop++;
        }
      }
      p.socket.uncork();
    }
  }

  private writeTag(p: ReplayPublisher, tag: { type: number; body: Buffer }, timestamp: number): void {
    const csid = CSID[tag.type]!;
    const header = Buffer.allocUnsafe(12);
    header[0] = csid;
    header.writeUIntBE(Math.min(timestamp, 0xfffffe), 1, 3);
    header.writeUIntBE(tag.body.length, 4, 3);
    header[7] = tag.type;
    header.writeUInt32LE(1, 8);
    p.socket.write(header);
    for (let i = 0; i < tag.body.length; i += CHUNK) {
      if (i > 0) p.socket.write(continuation.get(csid)!);
      p.socket.write(tag.body.subarray(i, i + CHUNK));
    }
    this.totals.bytes += 12 + tag.body.length + Math.floor((tag.body.length - 1) / CHUNK);
  }
}
