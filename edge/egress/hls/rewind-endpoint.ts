import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { admitViewer, type ViewerAccess } from '../../../server/core/auth/viewer-access.ts';
import { RelayError } from '../../../server/core/errors.ts';
import { isRecordingId, liveRecording, recordingPaths, variantOf, type RenditionState } from '../../../server/core/recording/model.ts';
import { mediaPlaylist, multivariantPlaylist } from '../../../server/core/recording/playlist.ts';
import type { RecordingStore } from '../../../server/core/recording/store.ts';

export interface RewindHost {
  access: ViewerAccess;
  /** Where recorders keep recordings (the same store, or a shared one). */
  store: RecordingStore;
  /** Seconds a viewer may go back in a stream (`streams[].dvrWindowS`, else `hls.dvrWindowS`); 0: the whole recording. */
  windowS(stream: string): number;
}

type Req = FastifyRequest<{ Params: { stream: string; id?: string; rendition?: string; file?: string }; Querystring: { token?: string } }>;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const FILE = /^(init-\d+\.mp4|\d{6}\.m4s)$/;

/** A recording of this stream (not of another whose name it begins with: its viewers may not be this one's). */
const ofStream = (stream: string, id: string | undefined): id is string =>
  id !== undefined && isRecordingId(id) && new RegExp(`^${stream}-\\d{8}-\\d{6}-t\\d+(-\\d+)?$`).test(id);

/**
 * Rewind in a live stream, from its recording: the past comes from storage, not from an edge's memory.
 * - `GET /rewind/<stream>/index.m3u8`: the multivariant playlist of the recording the stream's live publication goes
 *   into (404 STREAM_OFFLINE when it is not being recorded);
 * - `GET /rewind/<stream>/<recording>/<rendition>/index.m3u8`: its media playlist, the last `windowS` seconds (a
 *   sliding window; all of it, an EVENT playlist, with no window), growing a segment at a time;
 * - init segments and segments beside it, immutable.
 * Any HLS player plays it; the watch page does when its viewer drags the seek bar back. Playback tokens apply as on
 * every viewer route, and ride on every URI below the first.
 */
export class RewindEndpoint {
  /** What was read from the store lately, by path: every viewer's poll within a second costs one read. */
  private readonly recent = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(private readonly host: RewindHost) {}

  attach(app: FastifyInstance): void {
    app.get('/rewind/:stream/index.m3u8', (req: Req, reply) => this.multivariant(req, reply));
    app.get('/rewind/:stream/:id/:rendition/index.m3u8', (req: Req, reply) => this.media(req, reply));
    app.get('/rewind/:stream/:id/:rendition/:file', (req: Req, reply) => this.file(req, reply));
  }

  private admit(req: Req, reply: FastifyReply): string {
    void reply.header('access-control-allow-origin', '*');
    const { stream, rendition } = req.params;
    admitViewer(this.host.access, { stream, rendition, token: this.token(req) });
    return stream;
  }

  private token(req: Req): string | undefined {
    return typeof req.query.token === 'string' && req.query.token ? req.query.token : undefined;
  }

  private query(req: Req): string {
    const token = this.token(req);
    return token ? `?token=${encodeURIComponent(token)}` : '';
  }

  /** A JSON file of the store, read at most once a second (a recording's state changes once a segment). */
  private read<T>(path: string): Promise<T | undefined> {
    const now = performance.now();
    const hit = this.recent.get(path);
    if (hit && now - hit.at < 1000) return hit.value as Promise<T | undefined>;
    const value = this.host.store.read(path).then((raw) => raw && (JSON.parse(raw.toString()) as T));
    if (this.recent.size > 1000) this.recent.clear();
    this.recent.set(path, { at: now, value });
    value.catch(() => this.recent.delete(path));
    return value;
  }

  private async multivariant(req: Req, reply: FastifyReply): Promise<unknown> {
    const stream = this.admit(req, reply);
    const meta = await liveRecording(stream, (path) => this.read(path));
    if (!meta) throw new RelayError('STREAM_OFFLINE', `${stream} is not being recorded: nothing to rewind in`);
    const variants = [];
    for (const rendition of meta.renditions) {
      const state = await this.read<RenditionState>(recordingPaths.state(meta.id, rendition));
      if (state && state.segments.length > 0) variants.push(variantOf(rendition, state));
    }
    if (variants.length === 0) throw new RelayError('STREAM_OFFLINE', `${stream}: its recording has no segment yet`);
    return reply
      .header('cache-control', 'no-cache')
      .type('application/vnd.apple.mpegurl')
      .send(multivariantPlaylist(variants, `${meta.id}/`, this.query(req)));
  }

  private async media(req: Req, reply: FastifyReply): Promise<unknown> {
    const stream = this.admit(req, reply);
    const { id, rendition } = req.params;
    if (!ofStream(stream, id)) throw new RelayError('RECORDING_NOT_FOUND', String(id));
    const state = await this.read<RenditionState>(recordingPaths.state(id, rendition!));
    if (!state) throw new RelayError('RECORDING_NOT_FOUND', `${id}/${rendition}`);
    const text = mediaPlaylist(state.segments, state.ended, { windowS: this.host.windowS(stream), query: this.query(req) });
    // A segment comes every few seconds: a second of caching spares the store, as a live playlist's does.
    return reply.header('cache-control', 'public, max-age=1').type('application/vnd.apple.mpegurl').send(text);
  }

  private async file(req: Req, reply: FastifyReply): Promise<unknown> {
    const stream = this.admit(req, reply);
    const { id, rendition, file } = req.params;
    if (!ofStream(stream, id) || !file || !FILE.test(file)) throw new RelayError('RECORDING_NOT_FOUND', String(file));
    const path = `${id}/${rendition}/${file}`;
    const size = await this.host.store.stat(path);
    if (size === undefined) throw new RelayError('RECORDING_NOT_FOUND', path);
    return reply
      .header('cache-control', IMMUTABLE)
      .header('content-length', size)
      .type(file.endsWith('.mp4') ? 'video/mp4' : 'video/iso.segment')
      .send(this.host.store.open(path));
  }
}
