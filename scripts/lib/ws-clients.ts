/**
 * WebSocket viewers over raw sockets, for load that misbehaves on purpose:
 *   good       reads everything, checks every fragment (mfhd sequence) and records
 *              the longest wait between two frames
 *   stalled    completes the handshake, then never reads again
 *   throttled  reads at most `bytesPerSecond` (TCP back-pressure does the rest)
 * A churn viewer is any of these closed after a while, or mid-handshake.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { WsFmp4Checker } from './stream-checkers.ts';

export type ViewerKind = 'good' | 'stalled' | 'throttled';

export interface WsClient {
  kind: ViewerKind;
  checker: WsFmp4Checker;
  /** Longest time between two frames (ms), after the first. */
  maxGapMs: number;
  /** The server closed the connection. */
  closedByServer: boolean;
  close(): void;
}

/** Connects a viewer; resolves once the server answered the upgrade (rejects on a refusal or after 10 s). */
export function openViewer(url: string, kind: ViewerKind, options: { bytesPerSecond?: number } = {}): Promise<WsClient> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const checker = new WsFmp4Checker();
    let timer: NodeJS.Timeout | undefined;
    const client: WsClient = {
      kind,
      checker,
      maxGapMs: 0,
      closedByServer: false,
      close: () => {
        clearInterval(timer);
        socket.destroy();
      },
    };
    let head: Buffer | undefined = Buffer.alloc(0);
    let lastFrames = 0;
    let lastAt = 0;
    const feed = (chunk: Buffer) => {
      checker.push(chunk);
      if (checker.counts.frames !== lastFrames) {
        const now = performance.now();
        if (lastFrames > 0) client.maxGapMs = Math.max(client.maxGapMs, now - lastAt);
        lastFrames = checker.counts.frames;
        lastAt = now;
      }
    };
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error('no upgrade within 10 s'));
    }, 10_000);
    socket.on('error', () => {});
    socket.on('close', () => {
      client.closedByServer = true;
      clearInterval(timer);
      clearTimeout(giveUp);
      if (head) reject(new Error('closed before the upgrade'));
    });
    socket.on('connect', () => {
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const onData = (d: Buffer) => {
      if (!head) return feed(d);
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, 12).toString('latin1');
      const rest = head.subarray(end + 4);
      head = undefined;
      clearTimeout(giveUp);
      if (!status.includes(' 101')) {
        socket.destroy();
        return reject(new Error(`upgrade refused: ${status}`));
      }
      resolve(client);
      if (kind === 'good') return feed(rest);
      socket.off('data', onData);
      socket.pause();
      if (kind === 'throttled') {
        const budget = Math.max(1, Math.round((options.bytesPerSecond ?? 100_000) / 10));
        timer = setInterval(() => {
          const n = Math.min(budget, socket.readableLength);
          if (n > 0) socket.read(n);
        }, 100);
      }
    };
    socket.on('data', onData);
  });
}

/** Opens a viewer and closes it after `ms` (or, with `abort`, writes half a handshake and leaves). */
export async function churnOnce(url: string, ms: number, abort: boolean): Promise<'ok' | 'refused'> {
  if (abort) {
    const u = new URL(url);
    const socket = net.connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpg`));
    await new Promise((r) => setTimeout(r, ms));
    socket.destroy();
    return 'ok';
  }
  try {
    const client = await openViewer(url, 'good');
    await new Promise((r) => setTimeout(r, ms));
    client.close();
    return 'ok';
  } catch {
    return 'refused';
  }
}
