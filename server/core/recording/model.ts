// What recordings look like in their store, shared by the recorders that write them and the edges that serve a live
// stream's past (rewind) from them: the summary, each rendition's state, ids and paths.
import type { PlaylistSegment, VariantEntry } from './playlist.ts';

/** What `recording.json` holds: the recording as the API lists it. */
export interface RecordingMeta {
  id: string;
  stream: string;
  /** The publication's fencing token: one recording per publication. */
  token: number;
  /** Ingest wall-clock time of the first frame (ISO 8601). */
  startedAt: string;
  /** Of the end (the last frame's ingest time plus its length), once complete. */
  endedAt?: string | undefined;
  status: 'recording' | 'complete';
  /** Renditions recorded, in the order they began. */
  renditions: string[];
  durationS: number;
  bytes: number;
  /** Discontinuities: frames missing on the bus, or a codec change. */
  gaps: number;
  /** The MP4 file (faststart), once made. */
  mp4?: { file: string; bytes: number; rendition: string } | undefined;
}

/** A stored segment as a rendition's state lists it. */
export interface StoredSegment extends PlaylistSegment {
  bytes: number;
  videoFrames: number;
  audioFrames: number;
}

/** A rendition's state in a recording (`<rendition>/state.json`), written after each segment. */
export interface RenditionState {
  token: number;
  segments: StoredSegment[];
  initId: number;
  /** Where a resumed recorder goes on: the first frame not in a stored segment. */
  resume: { token: number; nextCounter: number } | undefined;
  ended: boolean;
  codecs: string;
  width?: number | undefined;
  height?: number | undefined;
  /** What MSE is told (`video/mp4; codecs="..."`) and each track's timescale: for replaying it over a WebSocket. */
  mime?: string | undefined;
  timescales?: Record<number, number> | undefined;
}

const pad = (n: number) => String(n).padStart(2, '0');
/** `cam-20261206-103412-t57`: the stream, the start (UTC) and the publication's token (which makes it unique). */
export function recordingId(stream: string, startedAt: number, token: number): string {
  const d = new Date(startedAt);
  const day = `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
  return `${stream}-${day}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}-t${token}`;
}

const ID = /^[A-Za-z0-9_-]{1,64}-\d{8}-\d{6}-t\d+(-\d+)?$/;
export const isRecordingId = (value: string) => ID.test(value);

/**
 * The recording a stream's live publication goes into now (its summary), read through `read` (a store's JSON files,
 * maybe cached): undefined when the stream is not being recorded.
 */
export async function liveRecording(stream: string, read: <T>(path: string) => Promise<T | undefined>): Promise<RecordingMeta | undefined> {
  const live = await read<{ id: string }>(recordingPaths.live(stream));
  const meta = live && isRecordingId(live.id) ? await read<RecordingMeta>(recordingPaths.meta(live.id)) : undefined;
  return meta?.status === 'recording' ? meta : undefined;
}

/** Where things are in the store. */
export const recordingPaths = {
  meta: (id: string) => `${id}/recording.json`,
  state: (id: string, rendition: string) => `${id}/${rendition}/state.json`,
  /** The recording a stream's live publication goes into now, for edges (rewind): `{ "id": ... }`, removed at its end. */
  live: (stream: string) => `live/${stream}.json`,
};

/** A rendition's entry in a multivariant playlist, its bandwidths measured over its stored segments (`guess` before any). */
export function variantOf(rendition: string, state: RenditionState, guessBitsPerSecond = 1_000_000): VariantEntry {
  let bytes = 0;
  let seconds = 0;
  let peak = 0;
  for (const seg of state.segments) {
    bytes += seg.bytes;
    seconds += seg.duration;
    if (seg.duration > 0) peak = Math.max(peak, (seg.bytes * 8) / seg.duration);
  }
  return {
    rendition,
    bandwidth: peak || guessBitsPerSecond,
    averageBandwidth: seconds > 0 ? (bytes * 8) / seconds : guessBitsPerSecond,
    codecs: state.codecs,
    width: state.width,
    height: state.height,
  };
}
