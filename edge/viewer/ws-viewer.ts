import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { newQueueState, type ViewerQueueState } from './viewer-queue.ts';

/** Messages the player receives as JSON text. */
export type ControlMessage =
  | { type: 'status'; state: 'connecting' | 'offline' | 'live' | 'ended'; stream: string; rendition: string }
  | { type: 'init'; mime: string; width?: number; height?: number; timescales: Record<number, number>; metadata: Record<string, unknown> }
  | { type: 'error'; code: string; message: string }
  /** This edge's id, and the edges a player may ask for a route if this one fails. */
  | { type: 'hello'; edge: string; peers: string[] }
  /** Another edge serves this viewer: reconnect there. */
  | { type: 'redirect'; url: string; edge: string }
  /** This edge is going away (draining): route again, without it. */
  | { type: 'reconnect'; reason: string; edge?: string };

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  REDIRECT: 4302,
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  TOO_SLOW: 4408,
  NO_EDGE: 4503,
} as const;

/**
 * One WebSocket viewer. Media goes out as pre-framed WebSocket messages written
 * straight to the socket (one buffer shared by all viewers, no per-viewer copy);
 * `ws` keeps the handshake, pings, control text and the closing handshake.
 * Requires permessage-deflate off, so that ws never queues frames of its own.
 */
export class Viewer {
  readonly queue: ViewerQueueState = newQueueState();
  /** False until this viewer has been sent a keyframe to start from. */
  started = false;
  /** Start only at a keyframe the origin received after this time (wall-clock ms): 0 for any. */
  startAfter = 0;
  /** performance.now() ms at the WebSocket's opening, and at its first keyframe (0: none yet). */
  readonly connectedAt = performance.now();
  firstFrameAt = 0;

  constructor(
    readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly remote: string,
  ) {}

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes written to this viewer and not yet taken by the kernel. */
  get queued(): number {
    return this.socket.writableLength;
  }

  writeWire(frame: Buffer): void {
    this.socket.write(frame);
  }

  control(message: ControlMessage): void {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason.slice(0, 120));
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    timer.unref();
  }
}
