/**
 * Many RTMP publishers in one process: each stream key gets its own connection that
 * replays an FLV file (made by ffmpeg, OBS-like) in real time, looped, as ffmpeg
 * `-re -stream_loop -1 -c copy` would send it. 100 ffmpeg processes cost 0.85% of a
 * core each here, most of these 2 cores at 100 streams; this costs a fraction of that,
 * which leaves the machine to what is measured.
 *
 *   node --import tsx scripts/lib/rtmp-replay.ts <file.flv> <rtmp://host:port/app> <key>[,<key>...]
 *
 * stdout, one JSON line per second: connections open and closed, bytes sent, CPU seconds.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { readFlvTags } from '../../test/helpers/flv-file.ts';
import { rtmpC0C1, rtmpHandshakeDone, rtmpPublishCommands } from './stream-checkers.ts';

const [file, base, keyList] = process.argv.slice(2) as [string, string, string];
const url = new URL(base);
const app = url.pathname.split('/')[1]!;
const CHUNK = 4096;
const tags = readFlvTags(readFileSync(file));
const frameMs = 1000 / 30;
/** One loop of the file lasts this long; the next loop's timestamps continue from there. */
const loopMs = tags.at(-1)!.timestamp + frameMs;
/** Configuration tags (metadata, AVC and AAC sequence headers) go out once, at the start. */
const isConfig = (t: { type: number; body: Buffer }) => t.type === 18 || (t.type === 9 && t.body[1] === 0) || (t.type === 8 && t.body[1] === 0);
const CSID: Record<number, number> = { 8: 4, 9: 6, 18: 5 };
const continuation = new Map([4, 5, 6].map((c) => [c, Buffer.from([0xc0 | c])]));
const totals = { open: 0, closed: 0, bytes: 0 };

interface Publisher {
  socket: net.Socket;
  next: number;
  loop: number;
  started: number;
  ready: boolean;
}

function writeTag(p: Publisher, tag: { type: number; body: Buffer }, timestamp: number): void {
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
  totals.bytes += 12 + tag.body.length + Math.floor((tag.body.length - 1) / CHUNK);
}

function publish(key: string): Publisher {
  const socket = net.connect(Number(url.port), url.hostname);
  const p: Publisher = { socket, next: 0, loop: 0, started: 0, ready: false };
  let handshake = Buffer.alloc(0);
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(rtmpC0C1()));
  socket.on('data', (d: Buffer) => {
    if (p.ready) return; // the server's answers are not needed
    handshake = Buffer.concat([handshake, d]);
    const done = rtmpHandshakeDone(handshake);
    if (!done) return;
    socket.write(Buffer.concat([done.c2, rtmpPublishCommands(`rtmp://${url.host}/${app}`, app, key, CHUNK)]));
    p.ready = true;
    p.started = performance.now() - Math.random() * 1000; // streams spread over a second
    totals.open++;
    for (const t of tags) if (isConfig(t)) writeTag(p, t, 0);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    if (p.ready) totals.closed++;
    p.ready = false;
  });
  return p;
}

const publishers = keyList.split(',').map(publish);

// One timer sends every due tag of every stream, in file order.
setInterval(() => {
  const now = performance.now();
  for (const p of publishers) {
    if (!p.ready || p.socket.destroyed) continue;
    p.socket.cork();
    for (;;) {
      const tag = tags[p.next]!;
      const timestamp = Math.round(tag.timestamp + p.loop * loopMs);
      if (p.started + timestamp > now) break;
      if (!isConfig(tag)) writeTag(p, tag, timestamp); // configuration went out at the start
      if (++p.next === tags.length) {
        p.next = 0;
        p.loop++;
      }
    }
    p.socket.uncork();
  }
}, 5);

setInterval(() => {
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ ...totals, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
}, 1000);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
