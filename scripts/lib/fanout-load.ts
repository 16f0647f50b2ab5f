/**
 * Fan-out load generator, one process of several: players of one live stream over
 * raw TCP sockets, each checking what it receives (scripts/lib/stream-checkers.ts):
 *   ws   this relay's WebSocket fMP4     ws://host:port/ws/<stream>?routed=1
 *   flv  HTTP-FLV (node-media-server)    http://host:port/live/<stream>.flv
 *   rtmp RTMP play (nginx-rtmp)          rtmp://host:port/<app>/<stream>
 *
 *   node --import tsx scripts/lib/fanout-load.ts <ws|flv|rtmp> <url>
 *
 * stdin, one JSON line per command: {"add": n} connects n more players (25 at a
 * time); {"mark": true} starts a measuring window.
 * stdout, one JSON line per second: players connected, failed and closed; bytes,
 * frames, gaps and frames lost in total; since the mark, the fewest frames any
 * player received; this process's CPU seconds.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { FlvChecker, RtmpPlayChecker, WsFmp4Checker, rtmpC0C1, rtmpHandshakeDone, rtmpPlayCommands, type StreamChecker } from './stream-checkers.ts';

type Protocol = 'ws' | 'flv' | 'rtmp';
const protocol = process.argv[2] as Protocol;
const url = new URL(process.argv[3]!);
if (!['ws', 'flv', 'rtmp'].includes(protocol)) throw new Error(`unknown protocol ${protocol}`);
/** RTMP: rtmp://host:port/<app>/<stream>. */
const [, rtmpApp = '', ...rtmpStream] = url.pathname.split('/');

interface Player {
  checker: StreamChecker;
  socket: net.Socket;
  markFrames: number;
  open: boolean;
}
const players: Player[] = [];
const totals = { connected: 0, failed: 0, closed: 0 };
let lastError = '';

/** The request that starts playback, and how many bytes of response come before the media. */
function opening(): { request: Buffer; handshake: 'http' | 'rtmp' } {
  const path = url.pathname + url.search;
  if (protocol === 'ws') {
    const key = randomBytes(16).toString('base64');
    return {
      request: Buffer.from(
        `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
      handshake: 'http',
    };
  }
  if (protocol === 'flv') return { request: Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\n\r\n`), handshake: 'http' };
  return { request: rtmpC0C1(), handshake: 'rtmp' };
}

function connect(): Promise<void> {
  return new Promise((resolve) => {
    const checker: StreamChecker = protocol === 'ws' ? new WsFmp4Checker() : protocol === 'flv' ? new FlvChecker() : new RtmpPlayChecker();
    const socket = net.connect(Number(url.port), url.hostname);
    const player: Player = { checker, socket, markFrames: 0, open: false };
    const { request, handshake } = opening();
    let pending: Buffer | undefined = Buffer.alloc(0);
    let chunked = false;
    let settled = false;
    const settle = (ok: boolean, why?: string) => {
      if (settled) return;
      settled = true;
      if (ok) {
        totals.connected++;
        player.open = true;
        players.push(player);
      } else {
        totals.failed++;
        lastError = why ?? 'failed';
        socket.destroy();
      }
      resolve();
    };
    const media = (chunk: Buffer) => {
      const reply = checker.push(chunk);
      if (reply) socket.write(reply);
    };
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      if (pending === undefined) return media(chunk);
      pending = Buffer.concat([pending, chunk]);
      if (handshake === 'rtmp') {
        const done = rtmpHandshakeDone(pending);
        if (!done) return;
        const { c2, rest } = done;
        socket.write(Buffer.concat([c2, rtmpPlayCommands(`rtmp://${url.host}/${rtmpApp}`, rtmpApp, rtmpStream.join('/'))]));
        pending = undefined;
        settle(true);
        if (rest.length) media(rest);
        return;
      }
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = pending.toString('latin1', 0, end);
      const status = Number(head.split(' ')[1]);
      if (status !== (protocol === 'ws' ? 101 : 200)) return settle(false, `HTTP ${status}`);
      // node-media-server answers HTTP-FLV with chunked transfer coding: strip it before the checker.
      chunked = /transfer-encoding:\s*chunked/i.test(head);
      const rest = pending.subarray(end + 4);
      pending = undefined;
      settle(true);
      if (chunked) {
        const dechunk = dechunker(media);
        socket.removeAllListeners('data');
        socket.on('data', dechunk);
        if (rest.length) dechunk(rest);
      } else if (rest.length) media(rest);
    });
    socket.on('error', (err) => settle(false, err.message));
    socket.on('close', () => {
      if (player.open) {
        player.open = false;
        totals.closed++;
      }
      settle(false, 'closed');
    });
  });
}

/** Removes HTTP/1.1 chunked transfer coding, passing the data through without copying it. */
function dechunker(out: (b: Buffer) => void): (b: Buffer) => void {
  let left = 0; // data bytes left in the current chunk
  let trailer = 0; // CRLF bytes to skip after a chunk
  let size = '';
  return (b: Buffer) => {
    let p = 0;
    while (p < b.length) {
      if (left > 0) {
        const n = Math.min(left, b.length - p);
        out(b.subarray(p, p + n));
        left -= n;
        p += n;
        if (left === 0) trailer = 2;
      } else if (trailer > 0) {
        trailer--;
        p++;
      } else {
        const c = b[p++]!;
        if (c === 0x0a) {
          left = parseInt(size, 16);
          size = '';
        } else if (c !== 0x0d) size += String.fromCharCode(c);
      }
    }
  };
}

async function add(n: number): Promise<void> {
  for (let i = 0; i < n; i += 25) await Promise.all(Array.from({ length: Math.min(25, n - i) }, () => connect()));
}

let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { add?: number; mark?: boolean };
  if (cmd.add) queue = queue.then(() => add(cmd.add!));
  if (cmd.mark) for (const p of players) p.markFrames = p.checker.counts.frames;
});
process.stdin.on('end', () => process.exit(0));

setInterval(() => {
  let bytes = 0,
    frames = 0,
    gaps = 0,
    lost = 0,
    minWindowFrames = Infinity,
    errors = 0;
  for (const p of players) {
    const c = p.checker.counts;
    bytes += c.bytes;
    frames += c.frames;
    gaps += c.gaps;
    lost += c.lost;
    if (p.checker.error) errors++;
    if (p.open) minWindowFrames = Math.min(minWindowFrames, c.frames - p.markFrames);
  }
  const cpu = process.cpuUsage();
  process.stdout.write(
    JSON.stringify({
      ...totals,
      bytes,
      frames,
      gaps,
      lost,
      errors,
      minWindowFrames: Number.isFinite(minWindowFrames) ? minWindowFrames : 0,
      lastError,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    }) + '\n',
  );
}, 1000);
