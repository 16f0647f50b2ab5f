import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { RelayError } from '../../../server/core/errors.ts';
import { closeCodeFor, type ControlMessage } from '../../protocol.ts';
import { newQueueState, type ViewerQueueState } from './viewer-queue.ts';

/**
 * The one way a WebSocket viewer is refused: an `error` control message with the
 * stable code, then a close with 4000 + the code's HTTP status and the code as reason.
 */
export function refuseWebSocket(ws: WebSocket, err: RelayError): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'error', code: err.code, message: err.message } satisfies ControlMessage));
  ws.close(closeCodeFor(err), err.code);
}

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

  /** Refused or dropped with a stable code (VIEWER_TOO_SLOW): told why, then closed with 4000 + its status. */
  refuse(err: RelayError): void {
    this.control({ type: 'error', code: err.code, message: err.message });
    this.close(closeCodeFor(err), err.code);
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason.slice(0, 120));
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    timer.unref();
  }
}
