import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { createNodeRegistry } from './node-metrics.ts';
import { RELAY_VERSION } from '../server/core/version.ts';
import { Edge } from '../edge/edge.ts';
import { Recorder } from '../recorder/recorder.ts';
import { DirectoryStore, type RecordingStore } from '../server/core/recording/store.ts';
import { ObjectRecordingStore } from '../server/core/recording/object-store.ts';
import { RecordingLibrary } from '../server/core/recording/library.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import { RelayError } from '../server/core/errors.ts';
import type { Logger } from '../server/core/log.ts';
import { FramePublisher } from '../server/core/bus/frame-publisher.ts';
import { createPublishMetrics, type PublishMetrics } from '../server/core/bus/bus-metrics.ts';
import { ensureFrameStream, frameStreamKeeper } from '../server/core/bus/frame-stream.ts';
import { connectNats, isNatsConnected, type NatsConnection } from '../server/core/bus/nats.ts';
import { NatsServerProcess } from './nats-server-process.ts';
import { createHttpServer } from '../server/core/http/http-server.ts';
import { WhipIngest } from '../server/origin/ingest/whip-ingest.ts';
import { onKeyframeRequest } from '../server/core/bus/keyframe-requests.ts';
import { WeriftEngine } from '../server/core/webrtc/werift-engine.ts';
import { MediasoupEngine, findMediasoupWorker } from '../server/core/webrtc/mediasoup/mediasoup-engine.ts';
import type { WebRtcEngine } from '../server/core/webrtc/webrtc-engine.ts';
import { AccessKeys } from '../server/core/auth/access-keys.ts';
import { Origin } from '../server/origin/origin.ts';
import { StreamLeases } from '../server/core/cluster/stream-lease.ts';
import { EdgeDirectory, EdgeHeartbeat, openEdgeBucket } from '../server/core/cluster/edge-directory.ts';
import type { EdgeMember } from '../server/core/cluster/placement-ring.ts';
import { RenditionCatalog } from '../server/core/bus/rendition-catalog.ts';
import { ShardLeaderBalancer } from '../server/core/bus/shard-leaders.ts';
import { RegionalBus } from '../server/core/bus/regional-bus.ts';
import { ownBusLayout } from '../server/core/bus/shards.ts';
import { publicHost } from '../server/core/http/net-address.ts';
import { NodeHeartbeat, openNodeBucket, readNodes, type NodeRecord } from '../server/core/cluster/node-registry.ts';
import {
  requestEndStream,
  requestForwardsChanged,
  requestRecording,
  requestTakeover,
  serveForwardChanges,
  serveStreamControl,
  serveTakeovers,
} from '../server/core/cluster/stream-control.ts';
import { ForwardList } from '../server/core/cluster/forward-list.ts';
import { attachIndexPage, attachPublicApi } from './public-api.ts';
import { attachHealth } from './health.ts';
import { startEmbeddedNats } from './embedded-nats.ts';
import { registerAdminApi } from './admin/admin-api.ts';
import { attachDashboard } from './admin/dashboard.ts';

export type Role = 'origin' | 'edge' | 'recorder';

/**
 * Retries a start-up step until it succeeds or `timeoutMs` passes: a new NATS
 * cluster answers "JetStream temporarily unavailable" until it has elected its
 * meta leader.
 */
async function retrying<T>(what: string, timeoutMs: number, log: Logger, step: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (Date.now() > deadline || (err instanceof RelayError && err.code === 'CONFIG_INVALID')) throw err;
      if (attempt === 1) log.info({ err: (err as Error).message }, `${what}: not ready yet, retrying`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export interface RelayNode {
  config: RelayConfig;
  http: FastifyInstance;
  httpPort: number;
  natsUrl: string;
  origin?: Origin;
  edge?: Edge;
  recorder?: Recorder;
  embeddedNats?: NatsServerProcess;
  registry: Registry;
  /** Publish keys, signing secrets and playback tokens: `reload()` re-reads auth.keysFile. */
  keys: AccessKeys;
  directory: EdgeDirectory;
  nodeId: string;
  /** Set once close() has begun: /readyz answers 503. */
  readonly draining: boolean;
  close(): Promise<void>;
}

/**
 * Starts a node with the given roles. With no NATS URL configured it starts a
 * local nats-server first (the all-in-one default).
 */
export async function startNode(
  roles: Role[],
  config: RelayConfig,
  log: Logger,
  keys = new AccessKeys(config, log.child({ module: 'auth' })),
): Promise<RelayNode> {
  const closers: (() => Promise<unknown>)[] = [];
  let draining = false;
  const close = async () => {
    draining = true;
    for (const c of closers.splice(0).reverse()) await c().catch((err) => log.warn({ err }, 'error while stopping'));
  };
  const stopWatchingKeys = keys.watch();
  try {
    let natsUrl = config.nats.url;
    // Credentials and TLS are for an external NATS; the embedded one listens locally without them.
    const security = config.nats.url ? { auth: config.nats.auth, tls: config.nats.tls } : undefined;
    let embeddedNats: NatsServerProcess | undefined;
    if (!natsUrl) {
      embeddedNats = await startEmbeddedNats(config, log);
      closers.push(() => embeddedNats!.stop());
      natsUrl = embeddedNats.url;
    }
    closers.push(async () => stopWatchingKeys());
    const nodeId = config.cluster.nodeId || `${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;
    const registry = createNodeRegistry({ id: nodeId, roles, version: RELAY_VERSION });
    const http = createHttpServer(log, config.http);
    closers.push(() => http.close());
    const readiness = attachHealth(http, roles, registry, () => draining);

    // One WebRTC engine per process: WHIP on an origin, WHEP on an edge.
    let engine: WebRtcEngine | undefined;
    if (config.webrtc.enabled)
      engine = await startWebRtcEngine(config.webrtc, { edge: roles.includes('edge'), origin: roles.includes('origin') }, log, closers);
    let origin: Origin | undefined;
    if (roles.includes('origin')) {
      const nc = await connectNats(natsUrl, 'relay-origin-publish', log, config.nats.connectTimeoutMs, security);
      closers.push(() => nc.close());
      readiness.natsPublish = () => isNatsConnected(nc);
      await retrying('frame stream', config.nats.connectTimeoutMs, log, () =>
        ensureFrameStream(nc, config.bus, log.child({ module: 'bus' }), ownBusLayout(config)),
      );
      const publisher = new FramePublisher(nc, {
        window: config.bus.publishWindow,
        timeoutMs: config.bus.publishTimeoutMs,
        log: log.child({ module: 'bus.publish' }),
        // Called on acks, once publishMetrics exists.
        acked: (seconds) => publishMetrics.publishLatency.observe(seconds),
      });
      const publishMetrics: PublishMetrics = createPublishMetrics(registry, () => publisher.stats);
      // After origin.stop() (closers run in reverse): its last frames and end markers acknowledged, then the ack timer stops.
      closers.push(() => publisher.close());
      // A restarted nats-server has lost the memory stream: recreate it when publishing fails or NATS comes back.
      const keepStream = frameStreamKeeper(nc, config.bus, log.child({ module: 'bus' }), ownBusLayout(config));
      publisher.on('failure', keepStream);
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'reconnect') keepStream();
      })().catch(() => {});
      // In a NATS cluster, the frame shards' leaders spread over the nodes (each stores its shards' frames).
      const balancer = new ShardLeaderBalancer(nc, ownBusLayout(config), log.child({ module: 'bus' }), config.bus.balanceLeadersMs);
      if (config.bus.balanceLeadersMs > 0) balancer.start();
      closers.push(async () => balancer.close());
      const leases = await retrying('lease bucket', config.nats.connectTimeoutMs, log, () =>
        StreamLeases.open(nc, config.cluster, nodeId, log.child({ module: 'lease' }), registry),
      );
      origin = new Origin(config, keys, publisher, leases, log, registry);
      readiness.rtmp = () => origin!.listening;
      readiness.leaseBucket = () => leases.reachable();
      closers.push(() => origin!.stop());
      if (engine) {
        const whip = origin.addIngest(
          new WhipIngest(config.webrtc, engine, origin.gateway, log.child({ module: 'ingest.whip' }), (stream, handler) =>
            onKeyframeRequest(nc, config.bus.subjectPrefix, stream, handler),
          ),
        );
        whip.attach(http);
      }
    }
    // Every node knows the live edges and can route a viewer (GET /api/route/<stream>).
    const ncCluster = await connectNats(natsUrl, 'relay-cluster', log, config.nats.connectTimeoutMs, security);
    closers.push(() => ncCluster.close());
    readiness.natsCluster = () => isNatsConnected(ncCluster);
    const edgeBucket = await retrying('edge bucket', config.nats.connectTimeoutMs, log, () =>
      openEdgeBucket(ncCluster, config.cluster, log.child({ module: 'cluster' })),
    );
    const directory = new EdgeDirectory(edgeBucket, config.cluster, log.child({ module: 'cluster' }));
    await directory.start();
    closers.push(async () => directory.stop());
    readiness.edgeBucket = async () => (await edgeBucket.status()).bucket !== undefined;
    const regionalBus = new RegionalBus(ncCluster, config, log.child({ module: 'bus' }));
    const catalog = new RenditionCatalog(ncCluster, (s) => regionalBus.locate(s));
    attachPublicApi(http, keys, directory, catalog, config.cluster.regionHeader);

    // Recordings: written by recorders, read by edges (rewind) and the admin API. A folder shared by the nodes.
    const recordingStore: RecordingStore =
      config.recording.storage === 'nats'
        ? await retrying('recordings object store', config.nats.connectTimeoutMs, log, () =>
            ObjectRecordingStore.open(ncCluster, config.recording.bucket, config.recording.replicas),
          )
        : new DirectoryStore(config.recording.dir || join(config.dataDir, 'recordings'));
    let edge: Edge | undefined;
    let heartbeat: EdgeHeartbeat | undefined;
    if (roles.includes('edge')) {
      const nc: NatsConnection = await connectNats(natsUrl, 'relay-edge', log, config.nats.connectTimeoutMs, security);
      closers.push(() => nc.close());
      readiness.natsEdge = () => isNatsConnected(nc);
      if (!origin)
        await retrying('frame stream', config.nats.connectTimeoutMs, log, () =>
          ensureFrameStream(nc, config.bus, log.child({ module: 'bus' }), ownBusLayout(config)),
        );
      let publicUrl = config.http.publicUrl.replace(/\/$/, '');
      const self = (): EdgeMember => ({
        id: nodeId,
        url: publicUrl,
        capacity: config.cluster.edgeCapacity,
        load: edge?.load ?? 0,
        ...(config.cluster.region && { region: config.cluster.region }),
      });
      heartbeat = new EdgeHeartbeat(edgeBucket, config.cluster, self, log.child({ module: 'cluster' }));
      edge = new Edge(
        config,
        nc,
        keys,
        log,
        registry,
        { self, directory, heartbeat },
        {
          engine,
          renditions: (s) => catalog.renditions(s),
          streamSettings: (s) => keys.entry(s),
          recordings: recordingStore,
        },
      );
      edge.attach(http);
      closers.push(() => edge!.close());
      // The advertised URL needs the real port: set once listening, before the first heartbeat.
      http.addHook('onListen', async () => {
        if (!publicUrl) {
          const address = http.server.address();
          const port = typeof address === 'object' && address ? address.port : config.http.port;
          publicUrl = `http://${publicHost(config.http.host)}:${port}`;
        }
      });
    }
    let recorder: Recorder | undefined;
    if (roles.includes('recorder')) {
      const nc = await connectNats(natsUrl, 'relay-recorder', log, config.nats.connectTimeoutMs, security);
      closers.push(() => nc.close());
      readiness.natsRecorder = () => isNatsConnected(nc);
      if (!origin && !edge)
        await retrying('frame stream', config.nats.connectTimeoutMs, log, () =>
          ensureFrameStream(nc, config.bus, log.child({ module: 'bus' }), ownBusLayout(config)),
        );
      // Recorders' leases (one recorder per stream) in a bucket of their own, beside the origins'.
      const recorderLeases = await retrying('recorder lease bucket', config.nats.connectTimeoutMs, log, () =>
        StreamLeases.open(nc, { ...config.cluster, leaseBucket: `${config.cluster.leaseBucket}_recorders` }, nodeId, log.child({ module: 'recorder.lease' })),
      );
      const rec = new Recorder({
        nc,
        config,
        store: recordingStore,
        leases: recorderLeases,
        streamSettings: (s) => keys.entry(s),
        log: log.child({ module: 'recorder' }),
      });
      recorder = rec;
      await rec.start();
      closers.push(() => rec.close());
    }
    // Leases as any node reads them (the origin's own StreamLeases takes and renews them).
    const leasesView = await retrying('lease bucket', config.nats.connectTimeoutMs, log, () =>
      StreamLeases.open(ncCluster, config.cluster, nodeId, log.child({ module: 'lease' })),
    );
    // Every node: a heartbeat of what it runs, the admin API and the dashboard over the whole cluster.
    const nodeBucket = await retrying('node bucket', config.nats.connectTimeoutMs, log, () =>
      openNodeBucket(ncCluster, config.cluster, log.child({ module: 'cluster' })),
    );
    readiness.nodeBucket = async () => (await nodeBucket.status()).bucket !== undefined;
    // Forwards operators add at run time (the admin API on any node writes them, the stream's origin applies them).
    const forwardList = await retrying('forward bucket', config.nats.connectTimeoutMs, log, () =>
      ForwardList.open(ncCluster, config.forward.bucket, config.cluster.kvReplicas),
    );
    const startedAt = Date.now();
    let baseUrl = config.http.publicUrl.replace(/\/$/, '');
    const rtmpUrl = () => `rtmp://${publicHost(config.rtmp.host)}:${origin?.rtmp.port ?? config.rtmp.port}/${config.rtmp.app}`;
    const record = (): NodeRecord => ({
      id: nodeId,
      roles,
      version: RELAY_VERSION,
      url: baseUrl,
      startedAt,
      draining,
      origin: origin && {
        rtmp: rtmpUrl(),
        rtmps: origin.rtmps && `rtmps://${publicHost(config.rtmps.host)}:${origin.rtmps.port}/${config.rtmp.app}`,
        srt: origin.srt && `srt://${publicHost(config.srt.host)}:${origin.srt.port}`,
        streams: origin
          .liveStreams()
          .filter((l) => l.token > 0 && !l.leaving)
          .map((l) => {
            const rate = l.meter.read(performance.now());
            return {
              stream: l.stream,
              protocol: l.protocol,
              since: l.since,
              token: l.token,
              bitsPerSecond: Math.round(rate.bitsPerSecond),
              framesPerSecond: Math.round(rate.framesPerSecond * 10) / 10,
              forwards: l.forwarding?.statuses().length ? l.forwarding.statuses() : undefined,
            };
          }),
      },
      edge: edge && { capacity: config.cluster.edgeCapacity, load: edge.load, viewers: edge.viewersByStream() },
    });
    const nodeHeartbeat = new NodeHeartbeat(nodeBucket, config.cluster, record, log.child({ module: 'cluster' }));
    closers.push(() => nodeHeartbeat.stop());
    if (origin) {
      const o = origin;
      const unsubscribe = serveStreamControl(ncCluster, config.bus.subjectPrefix, nodeId, (stream, reason) => o.end(stream, reason));
      const unsubscribeTakeovers = serveTakeovers(ncCluster, config.bus.subjectPrefix, nodeId, (stream) => o.release(stream));
      o.handOver = async (stream) => (await requestTakeover(ncCluster, config.bus.subjectPrefix, stream)) !== undefined;
      o.forwardList = forwardList;
      const unsubscribeForwards = serveForwardChanges(ncCluster, config.bus.subjectPrefix, nodeId, (stream) => o.applyForwards(stream));
      closers.push(async () => {
        o.handOver = undefined;
        unsubscribeForwards();
        unsubscribeTakeovers();
        unsubscribe();
      });
    }
    await registerAdminApi(http, {
      token: config.admin.token,
      streams: () => keys.names,
      isKnownStream: (name) => keys.isKnownStream(name),
      nodes: () => readNodes(nodeBucket),
      leases: () => leasesView.all(),
      renditions: (stream) => catalog.renditions(stream),
      ring: () => ({
        members: directory.members,
        balanceFactor: config.cluster.balanceFactor,
        spillAfter: config.cluster.spillAfter,
        place: (stream) => directory.route(stream, undefined, { count: false })?.id,
      }),
      endStream: async (stream, reason) => (await requestEndStream(ncCluster, config.bus.subjectPrefix, stream, reason))?.origin,
      forwards: {
        list: (stream) => forwardList.get(stream),
        add: (stream, url) => forwardList.add(stream, url),
        remove: (stream, id) => forwardList.remove(stream, id),
        changed: (stream) => requestForwardsChanged(ncCluster, config.bus.subjectPrefix, stream),
      },
      recordings: new RecordingLibrary(recordingStore),
      record: (stream, request) => requestRecording(ncCluster, config.bus.subjectPrefix, stream, request, request.record ? 8000 : 3000),
    });
    attachDashboard(http);
    attachIndexPage(http, () => keys.names, roles);
    // Listeners last, HTTP after RTMP: once /healthz answers, the node takes publishers and viewers.
    await origin?.start();
    await http.listen({ host: config.http.host, port: config.http.port }).catch((err: NodeJS.ErrnoException) => {
      throw new RelayError('CONFIG_INVALID', err.code === 'EADDRINUSE' ? `http.port ${config.http.port} is already in use` : err.message);
    });
    const address = http.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : config.http.port;
    if (!baseUrl) baseUrl = `http://${publicHost(config.http.host)}:${httpPort}`;
    if (heartbeat) {
      await heartbeat.start();
      await directory.poll();
    }
    await nodeHeartbeat.start();
    return {
      config,
      http,
      httpPort,
      natsUrl,
      origin,
      edge,
      recorder,
      embeddedNats,
      registry,
      keys,
      directory,
      nodeId,
      close,
      get draining() {
        return draining;
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * mediasoup's workers where the worker is installed (or asked for: then its absence is an error), for
 * WHEP viewers on edges and WHIP publishers on origins (each by its own setting); else werift.
 */
async function startWebRtcEngine(
  webrtc: RelayConfig['webrtc'],
  roles: { edge: boolean; origin: boolean },
  log: Logger,
  closers: (() => Promise<unknown>)[],
): Promise<WebRtcEngine> {
  const { portMin, portMax, announcedAddresses, iceServers } = webrtc;
  const ice = { portRange: portMin > 0 ? ([portMin, portMax] as [number, number]) : undefined, announcedAddresses, iceServers };
  const werift = new WeriftEngine(ice);
  await werift.warmUp(); // the first peer connection in a process is slow (key generation)
  const wanted = (setting: 'auto' | 'mediasoup' | 'werift', role: boolean) => role && setting !== 'werift';
  const forViewers = wanted(webrtc.engine, roles.edge);
  const forPublishers = wanted(webrtc.ingestEngine, roles.origin);
  if (!forViewers && !forPublishers) return werift;
  const worker = findMediasoupWorker();
  if (!worker) {
    const which =
      (roles.edge && webrtc.engine === 'mediasoup' && 'webrtc.engine') || (roles.origin && webrtc.ingestEngine === 'mediasoup' && 'webrtc.ingestEngine');
    if (which)
      throw new RelayError(
        'CONFIG_INVALID',
        `${which} is "mediasoup" but no mediasoup worker is installed: scripts/start builds one, or set MEDIASOUP_WORKER_BIN`,
      );
    log.info('WebRTC on werift: no mediasoup worker is installed (scripts/start builds one)');
    return werift;
  }
  const engine = await MediasoupEngine.start(
    {
      ...ice,
      workers: webrtc.workers,
      serverPort: webrtc.serverPort,
      viewers: forViewers ? 'mediasoup' : 'werift',
      ingest: forPublishers ? 'mediasoup' : 'werift',
    },
    worker,
    werift,
    log.child({ module: 'webrtc.mediasoup' }),
  );
  log.info({ viewers: forViewers ? 'mediasoup' : 'werift', publishers: forPublishers ? 'mediasoup' : 'werift' }, 'WebRTC engines');
  closers.push(() => engine.close());
  return engine;
}
