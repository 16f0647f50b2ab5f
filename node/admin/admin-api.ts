import { timingSafeEqual } from 'node:crypto';
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import parseRange from 'range-parser';
import { z } from 'zod';
import { RelayError } from '../../server/core/errors.ts';
import type { RenditionInfo } from '../../server/core/bus/rendition-catalog.ts';
import type { NodeRecord } from '../../server/core/cluster/node-registry.ts';
import type { EdgeMember } from '../../server/core/cluster/placement-ring.ts';
import type { LeaseHolder } from '../../server/core/cluster/stream-lease.ts';
import { isStreamName } from '../../server/core/media/stream-name.ts';
import { RELAY_VERSION } from '../../server/core/version.ts';
import type { Readable } from 'node:stream';
import type { RecordingMeta } from '../../server/core/recording/model.ts';
import type { RecordReply, RecordRequest } from '../../server/core/cluster/stream-control.ts';
import type { RuntimeForward } from '../../server/core/cluster/forward-list.ts';
import { parseForwardUrl } from '../../server/core/config/forward-url.ts';

/** What the admin API reads and does; the node wires it to NATS. */
export interface AdminBackend {
  /** The admin token; empty: the API is off (503 ADMIN_DISABLED). */
  token: string;
  /** Configured stream names (streams opened by signed keys are listed while they are live). */
  streams(): string[];
  /** A stream name the relay could serve: configured, or any valid name when signed publish keys are on. */
  isKnownStream(name: string): boolean;
  nodes(): Promise<NodeRecord[]>;
  leases(): Promise<Map<string, LeaseHolder & { revision: number }>>;
  renditions(stream: string): Promise<RenditionInfo[]>;
  /** The ring's live edges and where a stream's new viewers would go now (without counting a viewer). */
  ring(): { members: readonly EdgeMember[]; balanceFactor: number; spillAfter: number; place(stream: string): string | undefined };
  /** Asks the stream's origin to end it: the origin that did, or undefined if none answered. */
  endStream(stream: string, reason: string): Promise<string | undefined>;
  /** The forwards operators add at run time (NATS KV), and the stream's origin told of a change (the origin that applied it). */
  forwards: {
    list(stream: string): Promise<RuntimeForward[]>;
    add(stream: string, url: string): Promise<RuntimeForward>;
    remove(stream: string, id: string): Promise<boolean>;
    changed(stream: string): Promise<string | undefined>;
  };
  /** The recordings this node reads (its store: a NATS Object Store, or a folder it shares with recorders). */
  recordings?: RecordingsBackend | undefined;
  /** Asks recorders (any node) to start or stop recording publication `token` of a stream: who did, or undefined if none answered. */
  record(stream: string, request: RecordRequest): Promise<RecordReply | undefined>;
}

/** What the admin API reads of recordings (the recorder role). */
export interface RecordingsBackend {
  list(stream?: string): Promise<RecordingMeta[]>;
  get(id: string): Promise<RecordingMeta | undefined>;
  remove(id: string): Promise<boolean>;
  fileSize(id: string, path: string): Promise<number | undefined>;
  file(id: string, path: string, range?: { start: number; end: number }): Readable;
}

/**
 * Sends a stored file with HTTP ranges (one range; players seek in an MP4 with them, and Chromium treats a file without
 * them as a stream it cannot seek in).
 */
async function sendStoredFile(
  req: FastifyRequest,
  reply: FastifyReply,
  backend: RecordingsBackend,
  id: string,
  path: string,
  headers: Record<string, string>,
): Promise<FastifyReply> {
  const size = await backend.fileSize(id, path);
  if (size === undefined) throw new RelayError('RECORDING_NOT_FOUND', `${id}/${path}`);
  void reply.headers({ ...headers, 'accept-ranges': 'bytes' });
  const header = req.headers.range;
  const ranges = header ? parseRange(size, header, { combine: true }) : undefined;
  if (ranges === -1) return reply.code(416).header('content-range', `bytes */${size}`).send();
  if (ranges !== undefined && ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) {
    const { start, end } = ranges[0]!;
    return reply
      .code(206)
      .header('content-range', `bytes ${start}-${end}/${size}`)
      .header('content-length', end - start + 1)
      .send(backend.file(id, path, { start, end }));
  }
  return reply.header('content-length', size).send(backend.file(id, path));
}

// ---- The API's shapes, once: zod for the types, JSON Schema (from zod) for validation and the OpenAPI document.

const viewerCounts = z.object({ ws: z.number().int(), webrtc: z.number().int(), hls: z.number().int().optional().describe('HLS clients seen lately') });
const rendition = z.object({
  name: z.string(),
  width: z.number().int().optional(),
  height: z.number().int().optional(),
  codecs: z.string().describe('MSE codecs string'),
  audio: z.array(z.string()),
  webrtc: z.boolean().describe('Playable over WHEP (H.264 without B-frames, Opus)'),
  tracks: z.enum(['audio+video', 'audio', 'video']).describe('Both tracks, audio only or video only'),
});
const forwardView = z.object({
  id: z.string().optional().describe('Set for forwards added through this API (DELETE .../forwards/<id> removes one)'),
  target: z.string().describe("The target's URL, its stream key and SRT secrets shown as ***"),
  state: z.enum(['waiting', 'running', 'retrying', 'unsupported', 'closed']),
  restarts: z.number().int().describe('Times ffmpeg stopped on its own (the target refused or went away) and was tried again'),
  droppedFrames: z.number().int().describe('Frames dropped because the target read too slowly (forward.maxQueueBytes)'),
  error: z.string().optional().describe('Why it last stopped, or why the target cannot take this stream'),
});
const streamView = z.object({
  name: z.string(),
  live: z.boolean().describe('An origin holds its lease'),
  origin: z.string().nullable().describe('The origin holding the lease'),
  leaseToken: z.number().int().nullable().describe('Fencing token: the lease revision every frame carries'),
  since: z.number().nullable().describe('Publisher accepted at (ms since the epoch)'),
  protocol: z.enum(['rtmp', 'rtmps', 'whip', 'srt']).nullable(),
  bitsPerSecond: z.number().nullable(),
  framesPerSecond: z.number().nullable(),
  forwards: z.array(forwardView).describe('Its forwards to other servers (streams[].forward), as its origin reports them'),
  renditions: z.array(rendition),
  viewers: z.object({ total: z.number().int(), byEdge: z.record(z.string(), viewerCounts) }),
  placedOn: z.string().nullable().describe("The edge the ring sends this stream's next viewer to"),
});
const originStream = z.object({
  stream: z.string(),
  protocol: z.enum(['rtmp', 'rtmps', 'whip', 'srt']),
  since: z.number(),
  token: z.number().int(),
  bitsPerSecond: z.number(),
  framesPerSecond: z.number(),
  forwards: z.array(forwardView).optional(),
});
const nodeView = z.object({
  id: z.string(),
  roles: z.array(z.enum(['origin', 'edge', 'recorder'])),
  version: z.string(),
  url: z.string(),
  startedAt: z.number(),
  draining: z.boolean(),
  origin: z.object({ rtmp: z.string(), rtmps: z.string().optional(), srt: z.string().optional(), streams: z.array(originStream) }).optional(),
  edge: z.object({ capacity: z.number().int(), load: z.number().int(), viewers: z.record(z.string(), viewerCounts) }).optional(),
});
const ringView = z.object({
  balanceFactor: z.number(),
  spillAfter: z.number().int(),
  members: z.array(z.object({ id: z.string(), url: z.string(), capacity: z.number().int(), load: z.number().int() })),
  placements: z.record(z.string(), z.string().nullable()).describe('Configured stream -> the edge its next viewer goes to'),
});
const clusterView = z.object({ version: z.string(), at: z.number(), nodes: z.array(nodeView), ring: ringView, streams: z.array(streamView) });
export const endStreamBody = z
  .object({
    reason: z.string().min(1).max(200).optional().describe('Logged by the origin and sent to the publisher'),
  })
  .strict();
const endStreamReply = z.object({ stream: z.string(), ended: z.literal(true), origin: z.string() });
export const addForwardBody = z
  .object({
    url: z.string().min(1).max(2000).describe('rtmp://host/app/key, rtmps://host/app/key or srt://host:port?streamid=... (a # written %23)'),
  })
  .strict();
const runtimeForwardView = z.object({
  id: z.string(),
  target: z.string().describe('The URL with its stream key and SRT secrets shown as ***'),
  addedAt: z.number().describe('Added at (ms since the epoch)'),
});
const forwardsReply = z.object({ stream: z.string(), forwards: z.array(runtimeForwardView) });
const forwardAdded = runtimeForwardView.extend({
  stream: z.string(),
  appliedBy: z.string().nullable().describe('The origin forwarding it now (from its next keyframe); null when the stream is not live: it applies when it is'),
});
const forwardParams = {
  type: 'object',
  properties: { stream: streamParamsPattern(), id: { type: 'string', pattern: '^[0-9a-f]{12}$' } },
  required: ['stream', 'id'],
} as const;
const recordingView = z.object({
  id: z.string(),
  stream: z.string(),
  token: z.number().int().describe("The publication's fencing token: one recording per publication"),
  startedAt: z.string().describe('Ingest time of the first frame (ISO 8601)'),
  endedAt: z.string().optional(),
  status: z.enum(['recording', 'complete']),
  renditions: z.array(z.string()),
  durationS: z.number(),
  bytes: z.number().int(),
  gaps: z.number().int().describe('Discontinuities: frames missing on the bus, or a codec change'),
  mp4: z.object({ file: z.string(), bytes: z.number().int(), rendition: z.string() }).optional(),
});
const recordReply = z.object({
  stream: z.string(),
  recording: z.boolean().describe('Whether the stream is being recorded now'),
  recorder: z.string().describe('The recorder node that acted'),
  id: z.string().optional().describe('The recording begun (start) or ended (stop)'),
});
const recordingParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}-[0-9]{8}-[0-9]{6}-t[0-9]+(-[0-9]+)?$' } },
  required: ['id'],
} as const;
const problem = z.object({ code: z.string().describe('Stable error code'), message: z.string() });

export type StreamView = z.infer<typeof streamView>;
export type ClusterView = z.infer<typeof clusterView>;

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'openapi-3.0' });
function streamParamsPattern() {
  return { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
}
const streamParams = { type: 'object', properties: { stream: streamParamsPattern() }, required: ['stream'] } as const;
const errors = { 400: json(problem), 401: json(problem), 403: json(problem), 404: json(problem), 503: json(problem) };

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The admin REST API under `/admin/api`, behind `Authorization: Bearer <admin token>`:
 * the cluster (nodes, ring, streams), one stream, ending a stream. Bodies are
 * validated against the same schemas the OpenAPI document (`/admin/api/openapi.json`,
 * public) is made of.
 */
export async function registerAdminApi(app: FastifyInstance, backend: AdminBackend): Promise<void> {
  await app.register(
    async (api) => {
      await api.register(swagger, {
        openapi: {
          openapi: '3.0.3',
          info: {
            title: 'Relay admin API',
            version: RELAY_VERSION,
            description: 'Cluster state and stream control. Every route but this document needs `Authorization: Bearer <admin token>`.',
          },
          components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } },
          security: [{ adminToken: [] }],
        },
      });
      api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());
      api.addHook('onRequest', async (req: FastifyRequest) => {
        if (req.url.startsWith('/admin/api/openapi.json')) return;
        if (!backend.token) throw new RelayError('ADMIN_DISABLED');
        const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
        if (!auth) throw new RelayError('AUTH_REQUIRED');
        if (!tokenMatches(auth[1]!, backend.token)) throw new RelayError('ADMIN_TOKEN_INVALID');
      });
      api.addHook('onSend', async (_req, reply) => {
        void reply.header('cache-control', 'no-store');
      });

      api.get(
        '/cluster',
        {
          schema: { summary: 'Everything at a glance: nodes, the edge ring, every configured stream', response: { 200: json(clusterView), ...errors } },
        },
        async () => clusterNow(backend),
      );

      api.get(
        '/nodes',
        {
          schema: { summary: 'Live nodes (origins and edges) and what each runs', response: { 200: json(z.object({ nodes: z.array(nodeView) })), ...errors } },
        },
        async () => ({ nodes: await backend.nodes() }),
      );

      api.get(
        '/ring',
        {
          schema: { summary: 'The edge ring: members, load, and where each stream places', response: { 200: json(ringView), ...errors } },
        },
        async () => ringNow(backend),
      );

      api.get(
        '/streams',
        {
          schema: {
            summary: 'Every configured stream: owner origin, lease token, renditions, viewers per edge',
            response: { 200: json(z.object({ streams: z.array(streamView) })), ...errors },
          },
        },
        async () => ({ streams: (await clusterNow(backend)).streams }),
      );

      api.get<{ Params: { stream: string } }>(
        '/streams/:stream',
        {
          schema: { summary: 'One stream', params: streamParams, response: { 200: json(streamView), ...errors } },
        },
        async (req) => {
          const { stream } = req.params;
          if (!backend.isKnownStream(stream)) throw new RelayError('STREAM_UNKNOWN', stream);
          return (await clusterNow(backend, [stream])).streams[0]!;
        },
      );

      api.post<{ Params: { stream: string }; Body: z.infer<typeof endStreamBody> }>(
        '/streams/:stream/end',
        {
          schema: {
            summary:
              'End a live stream: its publisher is disconnected (STREAM_ENDED_BY_ADMIN), viewers see it end, the lease is released. A publisher that reconnects with a valid key publishes again.',
            params: streamParams,
            body: json(endStreamBody),
            response: { 200: json(endStreamReply), 502: json(problem), ...errors },
          },
        },
        async (req) => {
          const { stream } = req.params;
          if (!isStreamName(stream) || !backend.isKnownStream(stream)) throw new RelayError('STREAM_UNKNOWN', stream);
          const lease = (await backend.leases()).get(stream);
          if (!lease) throw new RelayError('STREAM_OFFLINE', stream);
          const origin = await backend.endStream(stream, req.body?.reason ?? 'ended by an operator');
          if (!origin) throw new RelayError('ORIGIN_UNREACHABLE', `origin ${lease.origin} holds ${stream}`);
          return { stream, ended: true as const, origin };
        },
      );

      const knownStream = (stream: string) => {
        if (!isStreamName(stream) || !backend.isKnownStream(stream)) throw new RelayError('STREAM_UNKNOWN', stream);
      };
      const shown = (f: RuntimeForward) => {
        const target = parseForwardUrl(f.url);
        return { id: f.id, target: typeof target === 'string' ? '(unreadable)' : target.shown, addedAt: f.addedAt };
      };
      api.get<{ Params: { stream: string } }>(
        '/streams/:stream/forwards',
        {
          schema: {
            summary:
              "The forwards added to the stream through this API (its configured ones are in streams[].forward; each one's state is in the stream's view)",
            params: streamParams,
            response: { 200: json(forwardsReply), ...errors },
          },
        },
        async (req) => {
          knownStream(req.params.stream);
          return { stream: req.params.stream, forwards: (await backend.forwards.list(req.params.stream)).map(shown) };
        },
      );
      api.post<{ Params: { stream: string }; Body: z.infer<typeof addForwardBody> }>(
        '/streams/:stream/forwards',
        {
          schema: {
            summary:
              'Forward (restream) the stream to another server, copied as it is: now if it is live (from its next keyframe), and every time it goes live until removed. Kept in NATS KV.',
            params: streamParams,
            body: json(addForwardBody),
            response: { 201: json(forwardAdded), 409: json(problem), ...errors },
          },
        },
        async (req, reply) => {
          const { stream } = req.params;
          knownStream(stream);
          const added = await backend.forwards.add(stream, req.body.url);
          const appliedBy = (await backend.forwards.changed(stream)) ?? null;
          return reply.code(201).send({ stream, ...shown(added), appliedBy });
        },
      );
      api.delete<{ Params: { stream: string; id: string } }>(
        '/streams/:stream/forwards/:id',
        {
          schema: {
            summary: 'Stop forwarding the stream to a target added through this API: its ffmpeg ends now, and it is not used again.',
            params: forwardParams,
            response: { 204: { type: 'null' }, ...errors },
          },
        },
        async (req, reply) => {
          const { stream, id } = req.params;
          knownStream(stream);
          if (!(await backend.forwards.remove(stream, id))) throw new RelayError('FORWARD_UNKNOWN', id);
          await backend.forwards.changed(stream);
          return reply.code(204).send();
        },
      );

      for (const action of ['start', 'stop'] as const) {
        api.post<{ Params: { stream: string } }>(
          `/streams/:stream/recording/${action}`,
          {
            schema: {
              summary:
                action === 'start'
                  ? "Record the stream's current publication now, whatever the configuration says (from its last keyframe). The next publication follows the configuration."
                  : "Stop recording the stream's current publication: its recording is complete (VOD playlist, MP4) and no recorder takes it up again.",
              params: streamParams,
              response: { 200: json(recordReply), 409: json(problem), ...errors },
            },
          },
          async (req) => {
            const { stream } = req.params;
            if (!isStreamName(stream) || !backend.isKnownStream(stream)) throw new RelayError('STREAM_UNKNOWN', stream);
            const lease = (await backend.leases()).get(stream);
            if (!lease) throw new RelayError('STREAM_OFFLINE', stream);
            // The fencing token: written into the lease by its first renewal; before that, the lease's revision is it.
            const token = lease.token ?? lease.revision;
            const reply = await backend.record(stream, { record: action === 'start', token });
            if (!reply) {
              if (action === 'start') throw new RelayError('RECORDING_UNAVAILABLE', 'no recorder answered');
              throw new RelayError('RECORDING_NOT_ACTIVE', stream);
            }
            return { stream, recording: action === 'start', recorder: reply.recorder, id: reply.recording };
          },
        );
      }

      const recordings = (): RecordingsBackend => {
        if (!backend.recordings) throw new RelayError('RECORDING_UNAVAILABLE');
        return backend.recordings;
      };
      api.get<{ Querystring: { stream?: string } }>(
        '/recordings',
        {
          schema: {
            summary: 'Recordings, newest first (of one stream with ?stream=)',
            querystring: { type: 'object', properties: { stream: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } },
            response: { 200: json(z.object({ recordings: z.array(recordingView) })), ...errors },
          },
        },
        async (req) => ({ recordings: await recordings().list(req.query.stream) }),
      );
      api.get<{ Params: { id: string } }>(
        '/recordings/:id',
        { schema: { summary: 'One recording', params: recordingParams, response: { 200: json(recordingView), ...errors } } },
        async (req) => {
          const meta = await recordings().get(req.params.id);
          if (!meta) throw new RelayError('RECORDING_NOT_FOUND', req.params.id);
          return meta;
        },
      );
      api.delete<{ Params: { id: string } }>(
        '/recordings/:id',
        { schema: { summary: 'Deletes a recording and its files', params: recordingParams, response: { 204: { type: 'null' }, ...errors } } },
        async (req, reply) => {
          if (!(await recordings().remove(req.params.id))) throw new RelayError('RECORDING_NOT_FOUND', req.params.id);
          return reply.code(204).send();
        },
      );
      api.get<{ Params: { id: string } }>(
        '/recordings/:id/file.mp4',
        { schema: { summary: 'The recording as one MP4 file (faststart): plays in any player', params: recordingParams } },
        async (req, reply) => {
          const meta = await recordings().get(req.params.id);
          if (!meta?.mp4) throw new RelayError('RECORDING_NOT_FOUND', `${req.params.id} has no MP4 (yet)`);
          return sendStoredFile(req, reply, recordings(), meta.id, meta.mp4.file, {
            'content-type': 'video/mp4',
            'content-disposition': `attachment; filename="${meta.id}.mp4"`,
          });
        },
      );
      api.get<{ Params: { id: string; '*': string } }>(
        '/recordings/:id/hls/*',
        { schema: { summary: "The recording's HLS (index.m3u8, then each rendition's playlist and segments): seekable playback", params: recordingParams } },
        async (req, reply) => {
          const path = req.params['*'];
          if (!/^(index\.m3u8|[a-z0-9_-]{1,32}\/(index\.m3u8|init-\d+\.mp4|\d{6}\.m4s))$/.test(path)) throw new RelayError('RECORDING_NOT_FOUND', path);
          const type = path.endsWith('.m3u8') ? 'application/vnd.apple.mpegurl' : 'video/mp4';
          return sendStoredFile(req, reply, recordings(), req.params.id, path, { 'content-type': type });
        },
      );
    },
    { prefix: '/admin/api' },
  );
}

function ringNow(backend: AdminBackend): z.infer<typeof ringView> {
  const ring = backend.ring();
  const placements: Record<string, string | null> = {};
  for (const s of backend.streams()) placements[s] = ring.place(s) ?? null;
  return {
    balanceFactor: ring.balanceFactor,
    spillAfter: ring.spillAfter,
    members: ring.members.map(({ id, url, capacity, load }) => ({ id, url, capacity, load })),
    placements,
  };
}

/** The cluster as the bucket, the leases and the bus say it is now. */
async function clusterNow(backend: AdminBackend, only?: string[]): Promise<ClusterView> {
  const [nodes, leases] = await Promise.all([backend.nodes(), backend.leases()]);
  const ring = ringNow(backend);
  const names = only ?? [...new Set([...backend.streams(), ...leases.keys()])];
  const streams = await Promise.all(
    names.map(async (name): Promise<StreamView> => {
      const lease = leases.get(name);
      const reported = lease && nodes.find((n) => n.id === lease.origin)?.origin?.streams.find((s) => s.stream === name);
      const byEdge: Record<string, { ws: number; webrtc: number; hls?: number }> = {};
      let total = 0;
      for (const n of nodes) {
        const v = n.edge?.viewers[name];
        const count = v ? v.ws + v.webrtc + (v.hls ?? 0) : 0;
        if (!v || count === 0) continue;
        byEdge[n.id] = v;
        total += count;
      }
      const renditions = lease ? await backend.renditions(name).catch(() => []) : [];
      return {
        name,
        live: lease !== undefined,
        origin: lease?.origin ?? null,
        leaseToken: reported?.token ?? lease?.token ?? null,
        since: reported?.since ?? lease?.since ?? null,
        protocol: reported?.protocol ?? null,
        bitsPerSecond: reported?.bitsPerSecond ?? null,
        framesPerSecond: reported?.framesPerSecond ?? null,
        forwards: reported?.forwards ?? [],
        renditions: renditions.map(({ name: n, width, height, codecs, audio, webrtc, tracks }) => ({ name: n, width, height, codecs, audio, webrtc, tracks })),
        viewers: { total, byEdge },
        placedOn: ring.placements[name] ?? null,
      };
    }),
  );
  return { version: RELAY_VERSION, at: Date.now(), nodes, ring, streams };
}
