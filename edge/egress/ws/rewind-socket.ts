import type { WebSocket } from 'ws';
import { RelayError } from '../../../server/core/errors.ts';
import type { Logger } from '../../../server/core/log.ts';
import { liveRecording, recordingPaths, type RenditionState } from '../../../server/core/recording/model.ts';
import { initFile, segmentFile } from '../../../server/core/recording/playlist.ts';
import type { RecordingStore } from '../../../server/core/recording/store.ts';
import { CloseCode, type ControlMessage } from '../../protocol.ts';
import { refuseWebSocket } from './ws-viewer.ts';

export interface RecordedFragment {
  /** `[prft] moof mdat`, as the muxer made it. */
  bytes: Buffer;
  /** Ingest wall-clock time (ms since the epoch), from its `prft`; undefined without one. */
  wallMs: number | undefined;
}

const NTP_EPOCH_OFFSET_S = 2_208_988_800;

/** Splits a stored segment into the fragments it is made of, each with its ingest time. Pure. */
export function splitSegment(segment: Buffer): RecordedFragment[] {
  const out: RecordedFragment[] = [];
  let start = 0;
  let wallMs: number | undefined;
  let p = 0;
  while (p + 8 <= segment.length) {
    const size = segment.readUInt32BE(p);
    const type = segment.toString('latin1', p + 4, p + 8);
    if (size < 8 || p + size > segment.length) throw new RelayError('RECORDING_NOT_FOUND', `a damaged segment (box ${type} of ${size} bytes at ${p})`);
    if (type === 'prft' && size >= 24) {
      const seconds = segment.readUInt32BE(p + 16);
      const fraction = segment.readUInt32BE(p + 20);
      wallMs = (seconds - NTP_EPOCH_OFFSET_S + fraction / 0x100000000) * 1000;
    }
    p += size;
    if (type === 'mdat') {
      out.push({ bytes: segment.subarray(start, p), wallMs });
      start = p;
      wallMs = undefined;
    }
  }
  return out;
}

/** Fragments go out this far ahead of their time: the player keeps a little buffer, as it does live. */
const LEAD_MS = 1500;

/**
 * A WebSocket viewer watching a live stream's past (`/ws/<stream>?at=<ms since the epoch>`): the edge reads the
 * stream's recording from the store, from the segment holding that moment, and sends its fragments on the socket at
 * the pace they were ingested, as the live path would have: the init, then `[prft] moof mdat` messages. Past the last
 * stored segment it waits for the next. The player goes back to live by reconnecting without `at`.
 */
export class RewindSocket {
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly store: RecordingStore,
    private readonly stream: string,
    private readonly rendition: string,
    private readonly atMs: number,
    private readonly log: Logger,
  ) {
    ws.on('close', () => this.close());
  }

  private async json<T>(path: string): Promise<T | undefined> {
    const raw = await this.store.read(path);
    return raw && (JSON.parse(raw.toString()) as T);
  }

  async start(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      if (this.closed) return;
      const e = err instanceof RelayError ? err : new RelayError('RECORDING_NOT_FOUND', (err as Error).message);
      this.log.debug({ stream: this.stream, err: e.message }, 'rewind over WebSocket stopped');
      refuseWebSocket(this.ws, e);
    }
  }

  private async run(): Promise<void> {
    const meta = await liveRecording(this.stream, (path) => this.json(path));
    if (!meta) throw new RelayError('STREAM_OFFLINE', `${this.stream} is not being recorded: nothing to rewind in`);
    const rendition = meta.renditions.includes(this.rendition) ? this.rendition : meta.renditions[0];
    if (!rendition) throw new RelayError('STREAM_OFFLINE', `${this.stream}: its recording has no rendition yet`);
    const dir = `${meta.id}/${rendition}`;
    let state = await this.json<RenditionState>(recordingPaths.state(meta.id, rendition));
    if (!state || state.segments.length === 0) throw new RelayError('STREAM_OFFLINE', `${this.stream}: its recording has no segment yet`);
    // The segment holding the moment asked for (segments start at keyframes), or the first one.
    let next = state.segments.findIndex((s) => s.programDateTime + s.duration * 1000 > this.atMs);
    if (next < 0) next = state.segments.length - 1;
    let initId = 0;
    let origin: { wall: number; at: number } | undefined;
    for (;;) {
      if (this.closed) return;
      const segment = state.segments[next];
      if (!segment) {
        if (state.ended) return this.send({ type: 'status', state: 'ended', stream: this.stream, rendition });
        await this.sleep(1000); // the next segment is being recorded
        state = (await this.json<RenditionState>(recordingPaths.state(meta.id, rendition))) ?? state;
        continue;
      }
      if (segment.initId !== initId) {
        const init = await this.store.read(`${dir}/${initFile(segment.initId)}`);
        if (!init) throw new RelayError('RECORDING_NOT_FOUND', `${dir}/${initFile(segment.initId)}`);
        initId = segment.initId;
        this.send({
          type: 'init',
          mime: state.mime ?? `video/mp4; codecs="${state.codecs}"`,
          width: state.width,
          height: state.height,
          timescales: state.timescales ?? { 1: 90_000, 2: 48_000 },
          metadata: {},
        });
        this.ws.send(init);
      }
      const data = await this.store.read(`${dir}/${segmentFile(segment.index)}`);
      if (!data) throw new RelayError('RECORDING_NOT_FOUND', `${dir}/${segmentFile(segment.index)}`);
      for (const fragment of splitSegment(data)) {
        const wall = fragment.wallMs ?? origin?.wall ?? 0;
        origin ??= { wall, at: performance.now() };
        const due = origin.at + (wall - origin.wall) - LEAD_MS;
        const wait = due - performance.now();
        if (wait > 0) await this.sleep(wait);
        if (this.closed) return;
        this.ws.send(fragment.bytes);
      }
      next++;
    }
  }

  private send(message: ControlMessage): void {
    if (!this.closed) this.ws.send(JSON.stringify(message));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => (this.timer = setTimeout(resolve, ms)));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** The edge is draining: the viewer is told to reconnect (elsewhere), and the socket closes. */
  drain(edge: string | undefined): void {
    this.send({ type: 'reconnect', reason: 'edge shutting down', edge });
    this.close();
    this.ws.close(CloseCode.GOING_AWAY, 'draining');
  }
}
