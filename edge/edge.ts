import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { admitViewer, tokenQuery, type ViewerAccess } from '../server/core/auth/viewer-access.ts';
import { requestKeyframe } from '../server/core/bus/keyframe-requests.ts';
import type { NatsConnection } from '../server/core/bus/nats.ts';
import { RegionalBus } from '../server/core/bus/regional-bus.ts';
import type { RenditionInfo } from '../server/core/bus/rendition-catalog.ts';
import { SOURCE_RENDITION } from '../server/core/bus/subjects.ts';
import type { EdgeDirectory, EdgeHeartbeat } from '../server/core/cluster/edge-directory.ts';
import type { EdgeMember } from '../server/core/cluster/placement-ring.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import { asRelayError, RelayError } from '../server/core/errors.ts';
import { endWithError } from '../server/core/http/http-server.ts';
import type { Logger } from '../server/core/log.ts';
import type { WebRtcEngine } from '../server/core/webrtc/webrtc-engine.ts';
import { EdgeStream } from './edge-stream.ts';
import { createEdgeMetrics, type EdgeMetrics } from './edge-metrics.ts';
import type { EgressFactory } from './egress/egress.ts';
import { WebRtcEgress } from './egress/webrtc/webrtc-egress.ts';
import { WhepEndpoint } from './egress/webrtc/whep-endpoint.ts';
import { WebRtcStream } from './egress/webrtc/webrtc-stream.ts';
import { HlsEgress } from './egress/hls/hls-egress.ts';
import { HlsEndpoint } from './egress/hls/hls-endpoint.ts';
import { RewindEndpoint } from './egress/hls/rewind-endpoint.ts';
import { RewindSocket } from './egress/ws/rewind-socket.ts';
import type { RecordingStore } from '../server/core/recording/store.ts';
import { WsEgress } from './egress/ws/ws-egress.ts';
import { refuseWebSocket, Viewer } from './egress/ws/ws-viewer.ts';
import { attachPlayerAssets, watchPage } from './player/watch-page.ts';
import { CloseCode, type ControlMessage } from './protocol.ts';
import { Rendition } from './rendition/rendition.ts';

/** How long after the last viewer here leaves a stream (and its renditions linger out) this region's copy of it is looked at for removal. */
const COPY_RELEASE_MS = 5000;

/** The edge's place in the cluster: who it is, the directory it routes with, its heartbeat. */
export interface EdgeCluster {
  self: () => EdgeMember;
  directory: EdgeDirectory;
  heartbeat: EdgeHeartbeat;
}

/**
 * The edge role: serves viewers of any stream from one bus consumer per stream
 * rendition, made on the first viewer and closed a while after the last one
 * leaves. It owns a tree that closes in cascade: edge -> stream -> rendition ->
 * egress (WebSocket fMP4, WHEP) -> viewer. A viewer the ring places on another
 * edge is sent there, unless an earlier hop routed it already (`?routed=1`): that
 * keeps a stale view from looping.
 */
export class Edge {
  private readonly streams = new Map<string, EdgeStream>();
  readonly metrics: EdgeMetrics;
  /** Set on close: new viewers are told to go elsewhere. */
  draining = false;
  /** WHEP playback, when the node has a WebRTC engine. */
  readonly whep: WhepEndpoint | undefined;
  /** LL-HLS, when `hls.enabled`. */
  readonly hls: HlsEndpoint | undefined;
  /** Rewind in recorded live streams, when the edge can read the recordings. */
  readonly rewind: RewindEndpoint | undefined;
  private readonly recordings: RecordingStore | undefined;
  /** Viewers watching a stream's past over a WebSocket (closed with the edge, as live viewers are). */
  private readonly rewinds = new Set<RewindSocket>();
  /** Streams with WebRTC viewers here: each one's broadcast over its layers. */
  private readonly webrtc = new Map<string, WebRtcStream>();
  private readonly egresses: EgressFactory[];
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  private readonly log: Logger;
  /** Where streams are read from: this node's shards, or this region's copies of other regions' streams. */
  private readonly bus: RegionalBus;
  /** With regions: the sweep of copies nobody reads. */
  private copySweep: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly config: RelayConfig,
    private readonly nc: NatsConnection,
    private readonly access: ViewerAccess,
    log: Logger,
    readonly registry: Registry = new Registry(),
    private readonly cluster?: EdgeCluster,
    services: {
      engine?: WebRtcEngine | undefined;
      renditions: (stream: string) => Promise<RenditionInfo[]>;
      /** A configured stream's own settings (its DVR window), if any. */
      streamSettings?: (stream: string) => { dvrWindowS?: number | undefined } | undefined;
      /** Where recorders keep recordings: a recorded live stream can be rewound from there. */
      recordings?: RecordingStore | undefined;
    } = { renditions: async () => [] },
  ) {
    this.log = log.child({ module: 'edge' });
    this.bus = new RegionalBus(nc, config, this.log.child({ module: 'bus' }));
    if (config.cluster.regions.length > 1 && config.bus.copySweepMs > 0) {
      // Idle two sweeps at least, and 10 s: an edge making a consumer again leaves a copy unread for well under a second.
      const minIdleMs = Math.max(10_000, 2 * config.bus.copySweepMs);
      this.copySweep = setInterval(() => void this.bus.sweepCopies(minIdleMs).catch(() => {}), config.bus.copySweepMs);
      this.copySweep.unref();
    }
    this.metrics = createEdgeMetrics(registry, () => this.consumers());
    const { edge, webrtc: rtc } = config;
    const limits = { skipBytes: edge.viewerSkipBytes, maxBytes: edge.viewerMaxBytes, maxLagMs: edge.viewerMaxLagMs };
    this.egresses = [(view) => new WsEgress(view, limits, this.metrics)];
    const { engine, renditions, streamSettings, recordings } = services;
    this.recordings = recordings;
    if (recordings) {
      this.rewind = new RewindEndpoint({
        access,
        store: recordings,
        windowS: (stream) => streamSettings?.(stream)?.dvrWindowS ?? config.hls.dvrWindowS,
      });
    }
    if (config.hls.enabled) {
      const { partTargetMs, segmentMinMs, liveSegments, dvrWindowS, maxBytesPerRendition, sessionIdleMs } = config.hls;
      const options = {
        partTargetS: partTargetMs / 1000,
        segmentMinS: segmentMinMs / 1000,
        liveSegments,
        dvrWindowS,
        maxBytes: maxBytesPerRendition,
        sessionIdleMs,
      };
      this.egresses.push((view) => new HlsEgress(view, { ...options, dvrWindowS: streamSettings?.(view.stream)?.dvrWindowS ?? dvrWindowS }));
      this.hls = new HlsEndpoint(
        {
          access,
          renditions,
          elsewhere: (s) => this.elsewhere(s, true)?.url,
          egressFor: (s, r) => this.rendition(s, r)?.egress(HlsEgress),
          siblings: (s) => this.hlsEgresses(s),
        },
        registry,
        () => Array.from(this.hlsEgresses(), ([, e]) => e),
      );
    }
    if (engine) {
      this.egresses.push((view) => new WebRtcEgress(view));
      this.whep = new WhepEndpoint(
        rtc,
        {
          access,
          renditions,
          elsewhere: (s) => this.elsewhere(s, true)?.url,
          simulcast: engine.simulcast,
          webrtcStream: (s, layers, primary, topKbps) => this.webrtcStream(engine, s, layers, primary, topKbps),
          draining: () => this.draining,
        },
        this.log.child({ module: 'edge.whep' }),
      );
    }
  }

  attach(app: FastifyInstance): void {
    app.get<{ Params: { stream: string }; Querystring: { routed?: string; token?: string } }>('/watch/:stream', async (req, reply) => {
      const { stream } = req.params;
      const token = typeof req.query.token === 'string' ? req.query.token : undefined;
      admitViewer(this.access, { stream, token });
      const elsewhere = req.query.routed ? undefined : this.elsewhere(stream, false);
      if (elsewhere) return reply.redirect(`${elsewhere.url}/watch/${stream}?routed=1${tokenQuery(token)}`, 302);
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(watchPage(stream, this.config.edge.playerProtocol));
    });
    attachPlayerAssets(app);
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.whep?.attach(app);
    this.hls?.attach(app);
    this.rewind?.attach(app);
  }

  /** The HLS egresses with a playlist: of one stream, or of all. */
  private *hlsEgresses(stream?: string): Generator<[string, HlsEgress]> {
    const streams = stream === undefined ? this.streams.values() : [this.streams.get(stream)].filter((s): s is EdgeStream => s !== undefined);
    for (const s of streams) {
      for (const r of s.all()) {
        const egress = r.egress(HlsEgress);
        if (egress?.viewerCount) yield [r.rendition, egress];
      }
    }
  }

  /** A stream's rendition on this edge, made and started if needed; undefined once the edge closes. */
  rendition(stream: string, rendition: string): Rendition | undefined {
    if (this.closing) return undefined;
    let s = this.streams.get(stream);
    if (!s) {
      s = new EdgeStream(
        stream,
        (name, viewerLeft) =>
          new Rendition(
            stream,
            name,
            { nc: this.nc, bus: this.bus, config: this.config, metrics: this.metrics, log: this.log.child({ stream, rendition: name }) },
            this.egresses,
            viewerLeft,
          ),
        this.config.edge.renditionLingerMs,
        (emptied) => {
          if (this.streams.get(stream) !== emptied) return;
          this.streams.delete(stream);
          // Nobody here watches it any more: once its consumers are gone, this region's copy goes too if no other edge reads it.
          setTimeout(() => void (!this.streams.has(stream) && this.bus.releaseCopies(stream).catch(() => {})), COPY_RELEASE_MS).unref();
        },
      );
      this.streams.set(stream, s);
    }
    return s.rendition(rendition);
  }

  /** The stream's WebRTC viewers here, over these layers (their renditions made on demand); undefined once the edge closes. */
  private webrtcStream(
    engine: WebRtcEngine,
    stream: string,
    layers: string[],
    primaryLayer: number,
    topLayerKbps: number | undefined,
  ): WebRtcStream | undefined {
    if (this.closing) return undefined;
    const known = this.webrtc.get(stream);
    if (known) return known; // the layers it was made with, while its viewers last
    const taps: WebRtcEgress[] = [];
    for (const name of layers) {
      const tap = this.rendition(stream, name)?.egress(WebRtcEgress);
      if (!tap) return undefined;
      taps.push(tap);
    }
    const { keyframeRequestMinMs } = this.config.webrtc;
    const broadcast = engine.broadcast({
      layers: layers.length,
      primaryLayer,
      keyframeRequestMinMs,
      topLayerKbps,
      // The source rendition of a WHIP stream makes keyframes on demand: ask its origin (it throttles).
      wantKeyframe: (layer) => {
        if (layers[layer] === SOURCE_RENDITION) requestKeyframe(this.nc, this.config.bus.subjectPrefix, stream);
      },
      firstPicture: (ms) => this.metrics.timeToFirstFrame.webrtc.observe(ms / 1000),
      sent: (bytes) => this.metrics.bytesOut.webrtc.inc(bytes),
    });
    const webrtc = new WebRtcStream(stream, primaryLayer, broadcast, taps, this.metrics, (closed) => {
      if (this.webrtc.get(stream) === closed) this.webrtc.delete(stream);
    });
    this.webrtc.set(stream, webrtc);
    return webrtc;
  }

  /** A rendition if this edge has it (never makes one). */
  findRendition(stream: string, rendition: string): Rendition | undefined {
    return this.streams.get(stream)?.find(rendition);
  }

  /** Streams and renditions open on this edge (the leak check, the metrics). */
  get openStreams(): number {
    return this.streams.size;
  }

  private *renditions(): Generator<Rendition> {
    for (const s of this.streams.values()) yield* s.all();
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
    for (const r of this.renditions()) yield { stream: r.stream, rendition: r.rendition, pending: r.pending };
  }

  /** Viewers per stream and protocol, every rendition together (the node record, the dashboard). */
  viewersByStream(): Record<string, { ws: number; webrtc: number; hls: number }> {
    const out: Record<string, { ws: number; webrtc: number; hls: number }> = {};
    for (const r of this.renditions()) {
      const v = (out[r.stream] ??= { ws: 0, webrtc: 0, hls: 0 });
      for (const e of r.egresses) v[e.protocol] += e.viewerCount;
    }
    return out;
  }

  /** Viewers on this edge, all streams: its load in the ring. */
  get load(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.viewerCount;
    return n;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const match = /^\/ws\/([^/?]*)(\?.*)?$/.exec(req.url ?? '');
    if (!match) return endWithError(socket, new RelayError('NOT_FOUND'));
    // What ws would refuse with a plain-text line: refused here with a stable code instead.
    const key = req.headers['sec-websocket-key'];
    if (
      req.method !== 'GET' ||
      req.headers.upgrade?.toLowerCase() !== 'websocket' ||
      typeof key !== 'string' ||
      !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()) ||
      !['8', '13'].includes(String(req.headers['sec-websocket-version']))
    ) {
      return endWithError(socket, new RelayError('REQUEST_INVALID', 'not a WebSocket handshake'));
    }
    let name: string;
    try {
      name = decodeURIComponent(match[1]!);
    } catch {
      name = '';
    }
    const query = new URLSearchParams(match[2] ?? '');
    const request = {
      stream: name,
      rendition: query.get('rendition') || SOURCE_RENDITION,
      token: query.get('token') ?? undefined,
      routed: query.has('routed'),
      fromNextKeyframe: query.get('start') === 'next',
      // Rewind: the stream's past from this moment (ms since the epoch), from its recording.
      at: /^\d{13}$/.test(query.get('at') ?? '') ? Number(query.get('at')) : undefined,
      remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
    };
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, socket, request));
  }

  private connected(
    ws: WebSocket,
    socket: Duplex,
    request: {
      stream: string;
      rendition: string;
      token: string | undefined;
      routed: boolean;
      fromNextKeyframe: boolean;
      at: number | undefined;
      remote: string;
    },
  ): void {
    ws.on('error', () => {});
    const { stream, rendition, token } = request;
    try {
      admitViewer(this.access, { stream, rendition, token });
    } catch (err) {
      return refuseWebSocket(ws, asRelayError(err));
    }
    const send = (message: ControlMessage) => ws.send(JSON.stringify(message));
    if (this.draining) {
      send({ type: 'reconnect', reason: 'edge shutting down', edge: this.cluster?.self().id });
      return ws.close(CloseCode.GOING_AWAY, 'draining');
    }
    if (request.at !== undefined) {
      // Any edge reads the recordings: no routing for the past.
      if (!this.recordings) return refuseWebSocket(ws, new RelayError('STREAM_OFFLINE', `${stream}: this edge reads no recordings`));
      const rewind = new RewindSocket(ws, this.recordings, stream, rendition, request.at, this.log);
      this.rewinds.add(rewind);
      ws.once('close', () => this.rewinds.delete(rewind));
      return void rewind.start();
    }
    if (this.cluster) {
      send({ type: 'hello', edge: this.cluster.self().id, peers: this.cluster.directory.members.map((m) => m.url) });
      const elsewhere = request.routed ? undefined : this.elsewhere(stream, true);
      if (elsewhere) {
        const query = (rendition === SOURCE_RENDITION ? '' : `&rendition=${rendition}`) + tokenQuery(token);
        send({ type: 'redirect', url: `${elsewhere.url.replace(/^http/, 'ws')}/ws/${stream}?routed=1${query}`, edge: elsewhere.id });
        return ws.close(CloseCode.REDIRECT, 'redirect');
      }
    }
    const egress = this.rendition(stream, rendition)?.egress(WsEgress);
    const viewer = new Viewer(ws, socket, request.remote);
    if (!egress) return viewer.close(CloseCode.GOING_AWAY, 'edge shutting down');
    egress.add(viewer, request.fromNextKeyframe);
  }

  /**
   * Drains: leaves the ring first (routes stop pointing here), then tells every
   * viewer to reconnect elsewhere, then closes every stream, rendition, egress and
   * viewer. Existing viewers lose only a reconnect. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      clearInterval(this.copySweep);
      await this.cluster?.heartbeat.stop();
      this.cluster?.directory.stop();
      const draining = { edge: this.cluster?.self().id };
      await this.whep?.close();
      for (const webrtc of [...this.webrtc.values()]) webrtc.close();
      for (const rewind of this.rewinds) rewind.drain(draining.edge);
      this.rewinds.clear();
      const streams = [...this.streams.values()];
      this.streams.clear();
      await Promise.all(streams.map((s) => s.close(draining)));
    })();
    return this.closing;
  }
}
