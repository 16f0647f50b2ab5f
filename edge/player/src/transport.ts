// Transport and routing: the WebSocket that feeds the player, the edge it is on,
// following redirects, and failing over to another edge when this one goes away.

import { CloseCode, type ControlMessage } from '../../protocol.ts';

export interface TransportHooks {
  /** A binary message of the current socket: fMP4. */
  media(data: ArrayBuffer): void;
  /** A control message of the current socket (hello, redirect and reconnect are handled here first). */
  control(message: ControlMessage): void;
  /** A socket opened by connect(). */
  opened(): void;
  /** Refused for good (a bad name, no such stream, a bad token): retrying would be refused again. */
  refused(reason: string): void;
  /** The socket closed under the player: it reconnects, through another edge when needed. */
  lost(): void;
  /** The rendition connect() asks for. */
  rendition(): string;
  note(what: string): void;
}

/** Close codes that mean the request itself is refused: a retry would be refused again. */
const FINAL: readonly number[] = [CloseCode.BAD_REQUEST, CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN, CloseCode.NOT_FOUND];

export class Transport {
  /** The socket feeding the player now. */
  ws: WebSocket | undefined;
  /** Where to connect next; the page's own edge until routed elsewhere. */
  private next: string | undefined;
  /** The edge serving us (from its hello), and other edges to ask for a route if ours fails. */
  private edgeId: string | undefined;
  private peers: string[] = [];
  private readonly failedEdges = new Set<string>();
  private retryMs = 500;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private destroyed = false;
  /** Edges routed to after failures, in order. */
  readonly edges: string[] = [];
  private readonly ownUrl: string;
  /** Extra query parameters of every connection (`at`: the past of the stream, while the viewer rewinds). */
  readonly params: Record<string, string | undefined> = {};

  constructor(
    private readonly stream: string,
    private readonly token: string | undefined,
    private readonly hooks: TransportHooks,
  ) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.ownUrl = `${scheme}://${location.host}/ws/${encodeURIComponent(stream)}${location.search.includes('routed=1') ? '?routed=1' : ''}`;
  }

  /** The URL of a socket for `rendition` on the edge of `base` (a ws URL), with the playback token. */
  urlFor(base: string, rendition: string, extra: Record<string, string | undefined> = {}): string {
    const url = new URL(base);
    if (this.token) url.searchParams.set('token', this.token);
    if (rendition === 'source') url.searchParams.delete('rendition');
    else url.searchParams.set('rendition', rendition);
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined) url.searchParams.delete(k);
      else url.searchParams.set(k, v);
    }
    return url.toString();
  }

  /** Later connections go to the edge of this socket URL. */
  goTo(wsUrl: string): void {
    this.next = this.urlFor(wsUrl, 'source');
  }

  connect(): void {
    if (this.destroyed) return;
    const socket = new WebSocket(this.urlFor(this.next ?? this.ownUrl, this.hooks.rendition(), this.params));
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      this.retryMs = 500;
      this.hooks.opened();
    };
    this.attach(socket);
  }

  /** Makes `socket` the one feeding the player. */
  attach(socket: WebSocket): void {
    this.ws = socket;
    this.hooks.note(`attach ${socket.url}`);
    let redirected = false;
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') return this.hooks.media(event.data);
      const msg = JSON.parse(event.data) as ControlMessage;
      switch (msg.type) {
        case 'redirect':
          redirected = true;
          this.next = msg.url;
          this.edgeId = msg.edge;
          break;
        case 'hello':
          this.edgeId = msg.edge;
          this.peers = msg.peers;
          break;
        case 'reconnect':
          if (msg.edge) this.edgeId = msg.edge;
          socket.close();
          break;
        default:
          break;
      }
      this.hooks.control(msg);
    };
    socket.onclose = (event) => {
      this.hooks.note(`close ${event.code} ${event.reason}`);
      if (socket !== this.ws || this.destroyed) return;
      if (FINAL.includes(event.code)) return this.hooks.refused(event.reason);
      if (redirected) return this.connect();
      this.hooks.lost();
      void this.failover();
    };
  }

  /** Closes a socket that no longer feeds the player, without reconnecting. */
  static retire(socket: WebSocket | undefined): void {
    if (!socket) return;
    socket.onclose = null;
    socket.onmessage = null;
    socket.close();
  }

  /** Our edge is gone (or draining): ask any edge we know for a route that avoids it. */
  private async failover(): Promise<void> {
    if (this.edgeId) this.failedEdges.add(this.edgeId);
    const exclude = [...this.failedEdges].join(',');
    this.hooks.note(`failover, excluding ${exclude}`);
    for (const base of new Set([location.origin, ...this.peers])) {
      try {
        const res = await fetch(`${base}/api/route/${encodeURIComponent(this.stream)}?exclude=${encodeURIComponent(exclude)}`, {
          signal: AbortSignal.timeout(800),
          cache: 'no-store',
        });
        this.hooks.note(`route via ${base}: ${res.status}`);
        if (!res.ok) continue;
        const route = (await res.json()) as { ws: string; edge: string };
        this.next = route.ws;
        this.edgeId = route.edge; // if this one fails before its hello, it is excluded next time too
        this.edges.push(route.edge);
        return this.connect();
      } catch (err) {
        this.hooks.note(`route via ${base} failed: ${(err as Error).name}`); // that edge is unreachable too: try the next
      }
    }
    // Nobody answered: try again later, the edges we excluded included.
    this.failedEdges.clear();
    this.next = undefined;
    if (this.destroyed) return;
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }

  /** Closes the socket and stops reconnecting, until the next connect() (the viewer rewinds meanwhile). */
  pause(): void {
    clearTimeout(this.retryTimer);
    Transport.retire(this.ws);
    this.ws = undefined;
  }

  /** Closes the socket and stops reconnecting. */
  destroy(): void {
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    Transport.retire(this.ws);
    this.ws = undefined;
  }
}
