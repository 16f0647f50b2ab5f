import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import { admitViewer, tokenQuery, type ViewerAccess } from '../../../server/core/auth/viewer-access.ts';
import type { RenditionInfo } from '../../../server/core/bus/rendition-catalog.ts';
import { RelayError } from '../../../server/core/errors.ts';
import { isRenditionName } from '../../../server/core/media/stream-name.ts';
import { RenderedPlaylist, type HlsEgress } from './hls-egress.ts';
import type { LlHlsPlaylist } from './ll-hls-playlist.ts';

/** What the HLS endpoint needs of the edge it runs on. */
export interface HlsHost {
  access: ViewerAccess;
  renditions(stream: string): Promise<RenditionInfo[]>;
  /** Another edge's base URL when the ring places this stream there. */
  elsewhere(stream: string): string | undefined;
  /** The HLS egress of a stream's rendition (made on demand); undefined once the edge drains. */
  egressFor(stream: string, rendition: string): HlsEgress | undefined;
  /** The HLS egresses of a stream's other renditions that have a playlist on this edge (rendition reports). */
  siblings(stream: string): Iterable<[rendition: string, egress: HlsEgress]>;
}

type Query = { token?: string; routed?: string; _HLS_msn?: string; _HLS_part?: string; _HLS_skip?: string };
type Req = FastifyRequest<{ Params: { stream: string; rendition?: string; file?: string }; Querystring: Query }>;

/** Parts, segments and init segments never change under their URI (it carries the playlist's generation). */
const IMMUTABLE = 'public, max-age=31536000, immutable';

export function createHlsMetrics(registry: Registry, egresses: () => Iterable<HlsEgress>) {
  const total = (of: (e: HlsEgress) => number) => {
    let n = 0;
    for (const e of egresses()) n += of(e);
    return n;
  };
  return {
    requests: new Counter({
      name: 'relay_hls_requests_total',
      help: 'HLS requests, by kind and status.',
      labelNames: ['kind', 'status'] as const,
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'relay_hls_bytes_total',
      help: 'HLS bytes sent (playlists before compression, media).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    blocked: new Gauge({
      name: 'relay_hls_blocked_requests',
      help: 'HLS requests held until a part or a playlist update exists (blocking reload, preload hints).',
      registers: [registry],
      collect() {
        this.set(total((e) => e.blocked));
      },
    }),
    viewers: new Gauge({
      name: 'relay_hls_viewers',
      help: 'HLS clients that asked for something lately (hls.sessionIdleMs): HLS has no connection per viewer.',
      registers: [registry],
      collect() {
        this.set(total((e) => e.viewerCount));
      },
    }),
  };
}

/**
 * HLS and LL-HLS on an edge, from the same per-frame CMAF fragments as the WebSocket
 * path:
 * - `GET /hls/<stream>/index.m3u8`: the multivariant playlist (renditions from the
 *   catalog). On an edge the ring does not place the stream on, a 302 to the edge it
 *   does, once: everything after is relative to that edge;
 * - `GET /hls/<stream>/<rendition>/index.m3u8[?_HLS_msn=&_HLS_part=&_HLS_skip=YES]`:
 *   the media playlist, held until it has the part asked for (blocking reload);
 * - parts, segments and init segments under the same folder, a hinted part held until
 *   it exists.
 * Playlists are short-lived for caches and gzip-compressed; media is immutable.
 * CORS is open. A playback token on the multivariant URL rides on every URI below it.
 */
export class HlsEndpoint {
  private readonly metrics: ReturnType<typeof createHlsMetrics>;

  constructor(
    private readonly host: HlsHost,
    registry: Registry,
    egresses: () => Iterable<HlsEgress>,
  ) {
    this.metrics = createHlsMetrics(registry, egresses);
  }

  attach(app: FastifyInstance): void {
    app.get<{ Params: { stream: string }; Querystring: Query }>('/hls/:stream/index.m3u8', (req, reply) => this.multivariant(req, reply));
    app.get<{ Params: { stream: string; rendition: string }; Querystring: Query }>('/hls/:stream/:rendition/index.m3u8', (req, reply) =>
      this.mediaPlaylist(req, reply),
    );
    app.get<{ Params: { stream: string; rendition: string; file: string }; Querystring: Query }>('/hls/:stream/:rendition/:file', (req, reply) =>
      this.media(req, reply),
    );
  }

  private admit(req: Req, reply: FastifyReply): { stream: string; token: string | undefined } {
    void reply.header('access-control-allow-origin', '*');
    const { stream, rendition } = req.params;
    const token = typeof req.query.token === 'string' && req.query.token ? req.query.token : undefined;
    admitViewer(this.host.access, { stream, rendition, token });
    return { stream, token };
  }

  private async multivariant(req: Req, reply: FastifyReply): Promise<unknown> {
    const { stream, token } = this.admit(req, reply);
    const other = req.query.routed ? undefined : this.host.elsewhere(stream);
    if (other) return reply.header('cache-control', 'no-store').redirect(`${other}/hls/${stream}/index.m3u8?routed=1${tokenQuery(token)}`, 302);
    const renditions = await this.host.renditions(stream);
    if (renditions.length === 0) throw new RelayError('STREAM_OFFLINE', stream);
    const q = token ? `?token=${encodeURIComponent(token)}` : '';
    const lines = ['#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-INDEPENDENT-SEGMENTS'];
    for (const r of renditions) {
      const average = ((r.videoKbps ?? guessVideoKbps(r)) + (r.audioKbps ?? (r.tracks === 'video' ? 0 : 128))) * 1000;
      const attributes = [`BANDWIDTH=${Math.round(average * 1.2)}`, `AVERAGE-BANDWIDTH=${Math.round(average)}`];
      if (r.width && r.height) attributes.push(`RESOLUTION=${r.width}x${r.height}`);
      attributes.push(`CODECS="${r.codecs}"`);
      if (r.frameRate) attributes.push(`FRAME-RATE=${r.frameRate.toFixed(3)}`);
      lines.push(`#EXT-X-STREAM-INF:${attributes.join(',')}`, `${r.name}/index.m3u8${q}`);
    }
    return this.playlistReply(req, reply, new RenderedPlaylist(lines.join('\n') + '\n'), 'public, max-age=2', 'multivariant');
  }

  private async mediaPlaylist(req: Req, reply: FastifyReply): Promise<unknown> {
    const { stream, token } = this.admit(req, reply);
    const rendition = req.params.rendition!;
    const egress = this.egress(stream, rendition);
    egress.seen(client(req));
    let playlist = egress.playlist()!;
    const msn = integer(req.query._HLS_msn);
    const part = integer(req.query._HLS_part);
    if ((req.query._HLS_msn !== undefined && msn === undefined) || (req.query._HLS_part !== undefined && (part === undefined || msn === undefined)))
      throw new RelayError('REQUEST_INVALID', '_HLS_msn is a segment number, and _HLS_part needs it');
    const blocking = msn !== undefined;
    const target = () => egress.playlist()?.targetDuration ?? 2;
    if (blocking) {
      if (playlist.playlistState(msn, part) === 'too-far') throw new RelayError('HLS_REQUEST_TOO_FAR', `_HLS_msn=${msn}`);
      const ready = await egress.waitFor(() => egress.playlist()?.playlistState(msn, part) === 'ready', 3 * target() * 1000);
      if (!ready) throw new RelayError('HLS_NOT_READY', `part ${msn}.${part ?? '-'} of ${stream}/${rendition}`);
    } else if (!coldReady(playlist)) {
      // Just made (the first viewer of this rendition here): a stream that is not live is refused at once; a
      // live one is answered once it has two complete segments (see coldReady; the rendition starts at the
      // bus's last keyframe).
      if (!(await this.host.renditions(stream)).some((r) => r.name === rendition)) throw new RelayError('STREAM_OFFLINE', `${stream}/${rendition}`);
      // Two GOPs: the GOP may not be known yet (the target duration then says 1 s), so wait long enough for 5 s ones.
      const ready = await egress.waitFor(() => coldReady(egress.playlist()), Math.max(3 * target(), 12) * 1000);
      if (!ready) throw new RelayError('STREAM_OFFLINE', `${stream}/${rendition}`);
    }
    playlist = egress.playlist()!;
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    const reports = [...this.host.siblings(stream)]
      .filter(([name]) => name !== rendition)
      .flatMap(([name, e]) => {
        const last = e.playlist()?.lastPart;
        return last ? [{ uri: `../${name}/index.m3u8`, lastMsn: last[0], lastPart: last[1] }] : [];
      });
    const skip = req.query._HLS_skip === 'YES' || req.query._HLS_skip === 'v2';
    // Every client blocked on the same part is answered at the same moment with the same text: render it
    // (and compress it) once, and share it.
    const key = `${skip ? 'skip' : 'full'}${query}${reports.map((r) => `|${r.lastMsn}.${r.lastPart}`).join('')}`;
    const rendered = egress.rendered(key, () => playlist.render({ skip, query, reports }));
    // A blocking response is the same for everyone asking the same question: caches may keep it a while.
    const cache = blocking ? `public, max-age=${3 * playlist.targetDuration}` : 'public, max-age=1';
    return this.playlistReply(req, reply, rendered, cache, 'media');
  }

  private async media(req: Req, reply: FastifyReply): Promise<unknown> {
    const { stream } = this.admit(req, reply);
    const rendition = req.params.rendition!;
    const file = req.params.file!;
    const egress = this.egress(stream, rendition);
    egress.seen(client(req));
    const playlist = egress.playlist()!;
    const match = /^([0-9a-f]{8}-)(?:init-(\d+)\.mp4|(\d+)\.(\d+)\.m4s|(\d+)\.m4s)$/.exec(file);
    if (!match || match[1] !== playlist.generation) throw this.notFound('media', file);
    const [, , init, partMsn, partIndex, segmentMsn] = match;
    let data: Buffer | undefined;
    let kind: 'init' | 'part' | 'segment';
    if (init !== undefined) {
      kind = 'init';
      data = playlist.initSegment(Number(init));
    } else if (segmentMsn !== undefined) {
      kind = 'segment';
      data = playlist.segment(Number(segmentMsn));
    } else {
      kind = 'part';
      data = await this.part(egress, playlist, Number(partMsn), Number(partIndex));
    }
    if (!data) throw this.notFound(kind, file);
    this.metrics.requests.inc({ kind, status: 200 });
    this.metrics.bytes.inc({ kind }, data.length);
    return reply
      .header('cache-control', IMMUTABLE)
      .type(kind === 'init' ? 'video/mp4' : 'video/iso.segment')
      .send(data);
  }

  /** A part, waiting for it when it is the one being made (a preload hint) or the next. */
  private async part(egress: HlsEgress, playlist: LlHlsPlaylist, msn: number, index: number): Promise<Buffer | undefined> {
    const now = playlist.part(msn, index);
    if (now.state !== 'pending') return now.data;
    const ready = await egress.waitFor(() => egress.playlist()?.part(msn, index).state !== 'pending', 3 * playlist.targetDuration * 1000);
    if (!ready) throw new RelayError('HLS_NOT_READY', `part ${msn}.${index}`);
    return egress.playlist()?.part(msn, index).data;
  }

  private egress(stream: string, rendition: string): HlsEgress {
    if (!isRenditionName(rendition)) throw new RelayError('HLS_NOT_FOUND', rendition);
    const egress = this.host.egressFor(stream, rendition);
    if (!egress?.playlist()) throw new RelayError('NO_EDGE_AVAILABLE', 'this edge is shutting down');
    return egress;
  }

  private notFound(kind: string, file: string): RelayError {
    this.metrics.requests.inc({ kind, status: 404 });
    return new RelayError('HLS_NOT_FOUND', file);
  }

  private playlistReply(req: Req, reply: FastifyReply, playlist: RenderedPlaylist, cache: string, kind: string): FastifyReply {
    this.metrics.requests.inc({ kind, status: 200 });
    this.metrics.bytes.inc({ kind }, playlist.body.length);
    void reply.header('cache-control', cache).header('vary', 'accept-encoding').type('application/vnd.apple.mpegurl');
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) ? playlist.gzip() : undefined;
    if (gzip) return reply.header('content-encoding', 'gzip').send(gzip);
    return reply.send(playlist.body);
  }
}

/**
 * A playlist just made (the first viewer of a rendition on this edge) is answered once it has
 * two complete segments. With one, hls.js 1.7 starts near the start of its timeline and there
 * loads the first segment's parts again and again (its buffer ends a few ms short of the last
 * part's end, where the last AAC frame ends), stalling for a second or two and then keeping
 * a second more of latency; clients that ignore parts need a complete segment anyway.
 */
function coldReady(playlist: LlHlsPlaylist | undefined): boolean {
  return !!playlist && (playlist.ended || playlist.completedSegments >= 2);
}

/** An HLS client, as sessions tell them apart: its address and user agent. */
const client = (req: Req) => `${req.ip} ${req.headers['user-agent'] ?? ''}`;

function integer(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,9}$/.test(value)) return undefined;
  return Number(value);
}

/** A rendition whose metadata says no bitrate: a guess from its height (BANDWIDTH is mandatory). */
function guessVideoKbps(r: RenditionInfo): number {
  if (r.tracks === 'audio') return 0;
  const h = r.height ?? 720;
  return h >= 1080 ? 5000 : h >= 720 ? 2500 : h >= 480 ? 1200 : h >= 360 ? 700 : 400;
}
