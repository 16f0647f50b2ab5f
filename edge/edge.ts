import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RelayConfig } from '../server/core/config/schema.ts';
import { RelayError } from '../server/core/errors.ts';
import { endWithError } from '../server/core/http/http-server.ts';
import type { NatsConnection } from '../server/core/bus/nats-connection.ts';
import type { Logger } from '../server/core/log.ts';
import { isStreamName } from '../server/core/media/stream-name.ts';
import type { EdgeDirectory, EdgeHeartbeat } from '../server/core/cluster/edge-directory.ts';
import type { EdgeMember } from '../server/core/cluster/placement-ring.ts';
import { createEdgeMetrics, type EdgeMetrics } from './edge-metrics.ts';
import { StreamHub } from './stream-hub.ts';
import { SOURCE_RENDITION } from '../server/core/bus/subjects.ts';
import { CloseCode, Viewer } from './viewer/ws-viewer.ts';
import type { RenditionInfo } from '../server/core/bus/rendition-catalog.ts';
import type { WebRtcEngine } from '../server/core/webrtc/webrtc-engine.ts';
import { WhepEgress } from './webrtc/whep-egress.ts';
import { tokenQuery, type ViewerAccess } from './viewer-access.ts';

const RENDITION = /^[a-z0-9_-]{1,32}$/;

/** A hub with no viewers stays this long (its consumer and GOP warm) before it closes. */
const HUB_LINGER_MS = 15_000;
const HUB_RETRY_MS = 2_000;

const playerFile = (name: string) => readFileSync(new URL(`./player/${name}`, import.meta.url), 'utf8');

/** The edge's place in the cluster: who it is, the directory it routes with, its heartbeat. */
export interface EdgeCluster {
  self: () => EdgeMember;
  directory: EdgeDirectory;
  heartbeat: EdgeHeartbeat;
}

/**
 * The edge role: serves viewers of any stream from one bus consumer per stream,
 * created on the first viewer and closed a while after the last one leaves.
 * A viewer the ring places on another edge is sent there, unless an earlier hop
 * routed it already (`?routed=1`): that keeps a stale view from looping.
 */
export class Edge {
  readonly hubs = new Map<string, StreamHub>();
  readonly metrics: EdgeMetrics;
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  /** Set on close: new viewers are told to go elsewhere. */
  draining = false;
  /** WHEP playback, when the node has a WebRTC engine. */
  readonly whep: WhepEgress | undefined;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  private readonly log: Logger;
  private readonly page = {
    html: playerFile('watch.html'),
    js: playerFile('player.js'),
    abr: playerFile('abr.js'),
    whep: playerFile('whep.js'),
    css: playerFile('player.css'),
  };

  constructor(
    private readonly config: RelayConfig,
    private readonly nc: NatsConnection,
    private readonly access: ViewerAccess,
    log: Logger,
    readonly registry: Registry = new Registry(),
    private readonly cluster?: EdgeCluster,
    webrtc?: { engine: WebRtcEngine; renditions: (stream: string) => Promise<RenditionInfo[]> },
  ) {
    this.log = log.child({ module: 'edge' });
    this.metrics = createEdgeMetrics(registry, () => this.consumers());
    if (webrtc) {
      this.whep = new WhepEgress(
        config.webrtc,
        webrtc.engine,
        {
          access,
          renditions: webrtc.renditions,
          elsewhere: (s) => this.elsewhere(s, true)?.url,
          hubFor: (s, r) => this.hubFor(s, r),
          released: (hub) => hub.viewerCount === 0 && this.linger(hub),
          draining: () => this.draining,
        },
        this.log.child({ module: 'edge.whep' }),
      );
    }
  }

  attach(app: FastifyInstance): void {
    app.get<{ Params: { stream: string }; Querystring: { routed?: string; token?: string } }>('/watch/:stream', async (req, reply) => {
      const { stream } = req.params;
      if (!isStreamName(stream)) throw Object.assign(new RelayError('STREAM_NAME_INVALID'), { statusCode: 400 });
      if (!this.access.isKnownStream(stream)) throw Object.assign(new RelayError('STREAM_UNKNOWN', stream), { statusCode: 404 });
      const token = typeof req.query.token === 'string' ? req.query.token : undefined;
      this.access.checkPlayback(stream, token);
      const elsewhere = req.query.routed ? undefined : this.elsewhere(stream, false);
      if (elsewhere) return reply.redirect(`${elsewhere.url}/watch/${stream}?routed=1${tokenQuery(token)}`, 302);
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(this.page.html.replaceAll('{{stream}}', stream).replaceAll('{{protocol}}', this.config.edge.playerProtocol));
    });
    app.get('/player/player.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(this.page.js));
    app.get('/player/abr.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(this.page.abr));
    app.get('/player/whep.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(this.page.whep));
    app.get('/player/player.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(this.page.css));
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.whep?.attach(app);
  }

  /**
   * The edge this viewer should use if it is not this one (and the ring knows this
   * edge). `count`: the caller is a viewer arriving (a WebSocket), not a page load.
   */
  private elsewhere(stream: string, count: boolean): EdgeMember | undefined {
    if (!this.cluster) return undefined;
    const selfId = this.cluster.self().id;
    if (!this.cluster.directory.member(selfId)) return undefined; // not in the ring yet: serve
    const edge = this.cluster.directory.route(stream, undefined, { count });
    return edge && edge.id !== selfId ? edge : undefined;
  }

  private *consumers() {
    for (const hub of this.hubs.values()) yield { stream: hub.stream, rendition: hub.rendition, pending: hub.pending };
  }

  /** Viewers per stream and protocol, every rendition together (the node record, the dashboard). */
  viewersByStream(): Record<string, { ws: number; webrtc: number }> {
    const out: Record<string, { ws: number; webrtc: number }> = {};
    for (const hub of this.hubs.values()) {
      const v = (out[hub.stream] ??= { ws: 0, webrtc: 0 });
      v.ws += hub.viewers.size;
      v.webrtc += hub.rtc.viewers.size;
    }
    return out;
  }

  /** Viewers on this edge, all streams: its load in the ring. */
  get load(): number {
    let n = 0;
    for (const hub of this.hubs.values()) n += hub.viewerCount;
    return n;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const match = /^\/ws\/([^/?]*)(\?.*)?$/.exec(req.url ?? '');
    if (!match) return endWithError(socket, 404, 'NOT_FOUND');
    // What ws would refuse with a plain-text line: refused here with a stable code instead.
    const key = req.headers['sec-websocket-key'];
    if (
      req.method !== 'GET' ||
      req.headers.upgrade?.toLowerCase() !== 'websocket' ||
      typeof key !== 'string' ||
      !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()) ||
      !['8', '13'].includes(String(req.headers['sec-websocket-version']))
    ) {
      return endWithError(socket, 400, 'REQUEST_INVALID', 'not a WebSocket handshake');
    }
    let name: string;
    try {
      name = decodeURIComponent(match[1]!);
    } catch {
      name = '';
    }
    const query = new URLSearchParams(match[2] ?? '');
    const routed = query.has('routed');
    const rendition = query.get('rendition') || SOURCE_RENDITION;
    const fromNextKeyframe = query.get('start') === 'next';
    const token = query.get('token') ?? undefined;
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, socket, name, rendition, remote, routed, fromNextKeyframe, token));
  }

  private connected(
    ws: WebSocket,
    socket: Duplex,
    stream: string,
    rendition: string,
    remote: string,
    routed: boolean,
    fromNextKeyframe: boolean,
    token: string | undefined,
  ): void {
    ws.on('error', () => {});
    const refuse = (err: RelayError, code: number) => {
      ws.send(JSON.stringify({ type: 'error', code: err.code, message: err.message }));
      ws.close(code, err.code);
    };
    if (!isStreamName(stream)) return refuse(new RelayError('STREAM_NAME_INVALID'), CloseCode.BAD_REQUEST);
    if (!RENDITION.test(rendition))
      return refuse(new RelayError('STREAM_NAME_INVALID', `rendition ${JSON.stringify(rendition.slice(0, 40))}`), CloseCode.BAD_REQUEST);
    if (!this.access.isKnownStream(stream)) return refuse(new RelayError('STREAM_UNKNOWN', stream), CloseCode.NOT_FOUND);
    try {
      this.access.checkPlayback(stream, token);
    } catch (err) {
      const e = err as RelayError;
      return refuse(e, e.status === 401 ? CloseCode.UNAUTHORIZED : CloseCode.FORBIDDEN);
    }
    if (this.draining) {
      ws.send(JSON.stringify({ type: 'reconnect', reason: 'edge shutting down', edge: this.cluster?.self().id }));
      ws.close(CloseCode.GOING_AWAY, 'draining');
      return;
    }
    if (this.cluster) {
      ws.send(JSON.stringify({ type: 'hello', edge: this.cluster.self().id, peers: this.cluster.directory.members.map((m) => m.url) }));
      const elsewhere = routed ? undefined : this.elsewhere(stream, true);
      if (elsewhere) {
        const query = (rendition === SOURCE_RENDITION ? '' : `&rendition=${rendition}`) + tokenQuery(token);
        ws.send(JSON.stringify({ type: 'redirect', url: `${elsewhere.url.replace(/^http/, 'ws')}/ws/${stream}?routed=1${query}`, edge: elsewhere.id }));
        ws.close(CloseCode.REDIRECT, 'redirect');
        return;
      }
    }
    const hub = this.hubFor(stream, rendition);
    const viewer = new Viewer(ws, socket, remote);
    hub.add(viewer, fromNextKeyframe);
    ws.on('close', () => {
      hub.remove(viewer);
      if (hub.viewerCount === 0) this.linger(hub);
    });
  }

  /** One hub per stream and rendition: `<stream>/<rendition>`. */
  private hubFor(stream: string, rendition: string): StreamHub {
    const key = `${stream}/${rendition}`;
    clearTimeout(this.lingering.get(key));
    this.lingering.delete(key);
    let hub = this.hubs.get(key);
    if (hub) return hub;
    hub = new StreamHub(stream, rendition, this.nc, this.config, this.metrics, this.log.child({ stream, rendition }));
    this.hubs.set(key, hub);
    this.startHub(key, hub);
    return hub;
  }

  private startHub(key: string, hub: StreamHub): void {
    hub.start().catch((err: Error) => {
      if (this.hubs.get(key) !== hub) return;
      this.log.warn({ stream: key, err: err.message }, 'cannot start the stream consumer; retrying');
      setTimeout(() => this.hubs.get(key) === hub && this.startHub(key, hub), HUB_RETRY_MS).unref();
    });
  }

  private linger(hub: StreamHub): void {
    const key = `${hub.stream}/${hub.rendition}`;
    clearTimeout(this.lingering.get(key));
    this.lingering.set(
      key,
      setTimeout(() => {
        this.lingering.delete(key);
        if (hub.viewerCount > 0 || this.hubs.get(key) !== hub) return;
        this.hubs.delete(key);
        void hub.close();
      }, HUB_LINGER_MS).unref(),
    );
  }

  /**
   * Drains: leaves the ring first (routes stop pointing here), then tells every
   * viewer to reconnect elsewhere, then closes. Existing viewers lose only a reconnect.
   */
  async close(): Promise<void> {
    this.draining = true;
    await this.cluster?.heartbeat.stop();
    this.cluster?.directory.stop();
    const edge = this.cluster?.self().id;
    for (const t of this.lingering.values()) clearTimeout(t);
    await this.whep?.close();
    for (const hub of this.hubs.values()) {
      for (const v of hub.viewers) {
        v.control({ type: 'reconnect', reason: 'edge shutting down', edge });
        v.close(CloseCode.GOING_AWAY, 'edge shutting down');
      }
      await hub.close();
    }
    this.hubs.clear();
  }
}
