// A rendition's LL-HLS media playlist, pure: the muxer's per-frame CMAF fragments in,
// parts, segments and playlist text out (RFC 8216bis with its low-latency extensions).
// No clock, no sockets: the egress feeds fragments and asks; tests drive it with bytes.
import { fragmentBytes, type Fragment } from '../../../server/core/media/mp4/fmp4-muxer.ts';

const TICKS = 90_000;

export interface LlHlsOptions {
  /** EXT-X-PART-INF PART-TARGET (s): parts are cut so that none is longer. */
  partTargetS: number;
  /** A segment is cut at the first random access point after this long (s); its floor of EXT-X-TARGETDURATION. */
  segmentMinS: number;
  /** Segments listed in a live playlist (a DVR window lists more). */
  liveSegments: number;
  /** Seconds a viewer may seek back (a longer playlist); 0: off. */
  dvrWindowS: number;
  /** Bytes of segments kept at most, whatever the DVR window says (memory per edge stays bounded). */
  maxBytes: number;
  /** The stream's keyframe interval when known (s): segments will be whole GOPs, so EXT-X-TARGETDURATION fits them from the first playlist. */
  gopS?: number | undefined;
}

export interface HlsPart {
  index: number;
  /** Decode time of its first frame, 90 kHz. */
  start: number;
  /** Seconds. */
  duration: number;
  /** Starts with a random access point. */
  independent: boolean;
  /** Its fragments in one buffer, shared by every request; dropped once the part leaves the playlist. */
  data: Buffer | undefined;
}

export interface HlsSegment {
  msn: number;
  start: number;
  duration: number;
  parts: HlsPart[];
  /** A new publication or a new codec configuration starts here. */
  discontinuity: boolean;
  /** The init segment (EXT-X-MAP) this segment needs. */
  initId: number;
  /** Ingest wall-clock time of its first frame (ms since the epoch): EXT-X-PROGRAM-DATE-TIME. */
  programDateTime: number;
  /** Its parts in one buffer, once the segment is complete. */
  data: Buffer | undefined;
}

interface OpenPart {
  start: number;
  independent: boolean;
  chunks: Buffer[];
  /** Decode time of the last fragment in it. */
  last: number;
}

interface OpenSegment {
  msn: number;
  start: number;
  parts: HlsPart[];
  discontinuity: boolean;
  initId: number;
  programDateTime: number;
  part: OpenPart | undefined;
}

/** Where a blocking request or a part stands against the playlist. */
export type PartState = 'ready' | 'pending' | 'gone' | 'too-far';

export interface RenderOptions {
  /** `_HLS_skip=YES` (or `v2`): a delta update that skips older segments. */
  skip?: boolean;
  /** Appended to every URI in the playlist (`?token=...`), so that media requests carry what the playlist request did. */
  query?: string;
  /** Other renditions of the stream: EXT-X-RENDITION-REPORT for each. */
  reports?: { uri: string; lastMsn: number; lastPart: number }[];
}

const s5 = (seconds: number) => seconds.toFixed(5);

/**
 * One rendition's LL-HLS playlist. Fragments come one per video frame (a few audio
 * frames for audio only); parts are cut so that none exceeds the part target, and a
 * segment starts at the first random access point after `segmentMinS`. A new
 * publication (a new init) starts a new segment with EXT-X-DISCONTINUITY and its own
 * EXT-X-MAP; the stream's end adds EXT-X-ENDLIST.
 */
export class LlHlsPlaylist {
  private readonly segments: HlsSegment[] = [];
  private open: OpenSegment | undefined;
  private nextMsn = 0;
  private discontinuitySequence = 0;
  private readonly inits = new Map<number, Buffer>();
  private initId = 0;
  private pendingDiscontinuity = false;
  private lastFragmentTime: number | undefined;
  /** Decode-time step of the last two fragments (ticks): the length of the next frame, for cutting parts. */
  private frameTicks = 3000;
  private maxSegmentS = 0;
  private keptBytes = 0;
  ended = false;
  /** Bumped on every change: the egress wakes blocked requests. */
  version = 0;

  /**
   * `generation` prefixes every media URI: a playlist made again (a restarted edge, another
   * edge) numbers its segments from 0, and a CDN must never serve an old part for a new one.
   */
  constructor(
    readonly options: LlHlsOptions,
    readonly generation = '',
  ) {}

  /** A new init segment: what follows is decoded with it, after EXT-X-DISCONTINUITY when something came before. */
  init(segment: Buffer): void {
    this.closeSegment();
    this.initId++;
    this.inits.set(this.initId, segment);
    this.pendingDiscontinuity = this.segments.length > 0;
    this.ended = false;
    this.lastFragmentTime = undefined;
    this.version++;
  }

  initSegment(id: number): Buffer | undefined {
    return this.inits.get(id);
  }

  get currentInitId(): number {
    return this.initId;
  }

  /** A fragment of the current publication, in order. The first after an init must be a random access point. */
  push(fragment: Fragment): void {
    if (this.initId === 0) return;
    if (!this.open && !fragment.keyframe) return; // a segment starts at a random access point
    const { time } = fragment;
    if (this.lastFragmentTime !== undefined) {
      const step = time - this.lastFragmentTime;
      if (step > 0 && step < TICKS) this.frameTicks = step;
    }
    const open = this.open;
    if (open && fragment.keyframe && (time - open.start) / TICKS >= this.options.segmentMinS * 0.95) {
      this.closeSegment(time);
    } else if (open?.part && (time - open.part.start + this.frameTicks) / TICKS > this.options.partTargetS) {
      this.closePart(open, time);
    }
    if (!this.open) {
      this.open = {
        msn: this.nextMsn++,
        start: time,
        parts: [],
        discontinuity: this.pendingDiscontinuity,
        initId: this.initId,
        programDateTime: fragment.receivedAt,
        part: undefined,
      };
      this.pendingDiscontinuity = false;
    }
    const current = this.open;
    current.part ??= { start: time, independent: fragment.keyframe, chunks: [], last: time };
    current.part.chunks.push(fragmentBytes(fragment));
    current.part.last = time;
    this.lastFragmentTime = time;
  }

  /** The publication ended: what is open closes (its last frame's length estimated) and EXT-X-ENDLIST follows. */
  end(): void {
    this.closeSegment();
    this.ended = true;
    this.version++;
  }

  /** Segments completed since the playlist was made, those the window has dropped included. */
  get completedSegments(): number {
    return this.nextMsn - (this.open ? 1 : 0);
  }

  /** The newest complete part: [msn, part index]; undefined before the first. */
  get lastPart(): [number, number] | undefined {
    if (this.open && this.open.parts.length > 0) return [this.open.msn, this.open.parts.length - 1];
    const last = this.segments.at(-1);
    return last && [last.msn, last.parts.length - 1];
  }

  /** The part a client should ask for next (EXT-X-PRELOAD-HINT). */
  get nextPart(): [number, number] {
    return this.open ? [this.open.msn, this.open.parts.length] : [this.nextMsn, 0];
  }

  /** EXT-X-TARGETDURATION: every segment's duration rounded is at most this; from the known GOP, so that it need not grow. */
  get targetDuration(): number {
    const { segmentMinS, gopS } = this.options;
    const expected = gopS ? gopS * Math.max(1, Math.ceil((segmentMinS * 0.95) / gopS)) : 0;
    return Math.max(1, Math.ceil(segmentMinS), Math.round(this.maxSegmentS), Math.round(expected));
  }

  /**
   * Whether a playlist with part `part` of segment `msn` (or the segment, `part`
   * undefined) can be answered now: 'ready', 'pending' (wait for it), or 'too-far'
   * (more than two segments past the last one: RFC 8216bis says 400).
   */
  playlistState(msn: number, part: number | undefined): PartState {
    const [nextMsn, nextIndex] = this.nextPart;
    if (msn > nextMsn + 2) return 'too-far';
    if (msn < nextMsn) {
      // A part past the end of a complete segment means the next segment's first part.
      const segment = this.find(msn);
      if (part === undefined || !segment || part < segment.parts.length) return 'ready';
      return this.playlistState(msn + 1, 0);
    }
    if (msn > nextMsn) return this.ended ? 'ready' : 'pending';
    return part !== undefined && part < nextIndex ? 'ready' : this.ended ? 'ready' : 'pending';
  }

  /** A part's bytes: 'ready' with them, 'pending' (the hinted next part, or the one after), or 'gone'. */
  part(msn: number, index: number): { state: PartState; data?: Buffer } {
    const segment = this.find(msn);
    if (segment) {
      const data = segment.parts[index]?.data;
      return data ? { state: 'ready', data } : { state: 'gone' };
    }
    if (this.open?.msn === msn) {
      const data = this.open.parts[index]?.data;
      if (data) return { state: 'ready', data };
      if (!this.ended && index <= this.open.parts.length + 1) return { state: 'pending' };
      return { state: 'gone' };
    }
    if (!this.ended && msn === this.nextMsn && index === 0) return { state: 'pending' };
    return { state: 'gone' };
  }

  /** A complete segment's bytes. */
  segment(msn: number): Buffer | undefined {
    return this.find(msn)?.data;
  }

  /** The media playlist. */
  render(options: RenderOptions = {}): string {
    const q = options.query ?? '';
    const target = this.targetDuration;
    const partTarget = this.options.partTargetS;
    const skipUntil = 6 * target;
    const all: (HlsSegment | OpenSegment)[] = this.open ? [...this.segments, this.open] : [...this.segments];
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      `#EXT-X-TARGETDURATION:${target}`,
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${s5(3 * partTarget)},CAN-SKIP-UNTIL=${s5(skipUntil)}`,
      `#EXT-X-PART-INF:PART-TARGET=${s5(partTarget)}`,
      `#EXT-X-MEDIA-SEQUENCE:${all[0]?.msn ?? this.nextMsn}`,
      `#EXT-X-DISCONTINUITY-SEQUENCE:${this.discontinuitySequence}`,
      '#EXT-X-INDEPENDENT-SEGMENTS',
    ];
    const fromEnd = this.secondsFromEnd();
    let skipped = 0;
    if (options.skip) while (skipped < this.segments.length && fromEnd[skipped]! - this.segments[skipped]!.duration >= skipUntil) skipped++;
    const lastThree = all.length + (this.open || this.ended ? 0 : 1) - 3;
    let initId = 0;
    if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
    for (let i = skipped; i < all.length; i++) {
      const segment = all[i]!;
      // The first listed segment's discontinuity is counted in EXT-X-DISCONTINUITY-SEQUENCE already.
      if (segment.discontinuity && segment !== all[0]) lines.push('#EXT-X-DISCONTINUITY');
      if (segment.initId !== initId) {
        initId = segment.initId;
        lines.push(`#EXT-X-MAP:URI="${this.generation}init-${initId}.mp4${q}"`);
      }
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(segment.programDateTime).toISOString()}`);
      const complete = 'duration' in segment;
      // Parts of segments that start within the last three target durations (every part listed is that close to the
      // end), and of the last three segments at most, counting the one the preload hint opens (short segments, as at
      // a publication's end, would otherwise put parts in more: hls-parser, and maybe some players, refuse that).
      if (fromEnd[i]! <= 3 * target + 1e-6 && i >= lastThree) {
        for (const part of segment.parts) {
          if (!part.data) continue;
          lines.push(
            `#EXT-X-PART:DURATION=${s5(part.duration)},URI="${this.generation}${segment.msn}.${part.index}.m4s${q}"${part.independent ? ',INDEPENDENT=YES' : ''}`,
          );
        }
      }
      if (complete) lines.push(`#EXTINF:${s5(segment.duration)},`, `${this.generation}${segment.msn}.m4s${q}`);
    }
    if (!this.ended) {
      const [msn, part] = this.nextPart;
      lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${this.generation}${msn}.${part}.m4s${q}"`);
    }
    for (const r of options.reports ?? []) lines.push(`#EXT-X-RENDITION-REPORT:URI="${r.uri}${q}",LAST-MSN=${r.lastMsn},LAST-PART=${r.lastPart}`);
    if (this.ended) lines.push('#EXT-X-ENDLIST');
    return lines.join('\n') + '\n';
  }

  private openDuration(): number {
    const open = this.open;
    if (!open) return 0;
    const last = open.part?.last ?? open.parts.at(-1)?.start ?? open.start;
    return (last - open.start + (open.part ? this.frameTicks : 0)) / TICKS;
  }

  private find(msn: number): HlsSegment | undefined {
    const first = this.segments[0];
    if (!first) return undefined;
    return this.segments[msn - first.msn];
  }

  /** Closes the open part at `until` (the next fragment's time), or after its last frame's estimated length. */
  private closePart(open: OpenSegment, until?: number): void {
    const part = open.part;
    if (!part) return;
    const endTime = until ?? part.last + this.frameTicks;
    open.parts.push({
      index: open.parts.length,
      start: part.start,
      duration: (endTime - part.start) / TICKS,
      independent: part.independent,
      data: part.chunks.length === 1 ? part.chunks[0] : Buffer.concat(part.chunks),
    });
    open.part = undefined;
    this.version++;
  }

  private closeSegment(until?: number): void {
    const open = this.open;
    if (!open) return;
    this.closePart(open, until);
    this.open = undefined;
    const last = open.parts.at(-1);
    if (!last) return;
    const duration = (last.start - open.start) / TICKS + last.duration;
    const data = Buffer.concat(open.parts.map((p) => p.data!));
    this.segments.push({
      msn: open.msn,
      start: open.start,
      duration,
      parts: open.parts,
      discontinuity: open.discontinuity,
      initId: open.initId,
      programDateTime: open.programDateTime,
      data,
    });
    this.maxSegmentS = Math.max(this.maxSegmentS, duration);
    this.keptBytes += data.length + open.parts.reduce((n, p) => n + (p.data?.length ?? 0), 0);
    this.trim();
    this.version++;
  }

  /**
   * Seconds from the start of each complete segment, then of the open one, to the playlist's end, summed from
   * durations: decode times start over with each publication, so they cannot be compared across a discontinuity.
   */
  private secondsFromEnd(): number[] {
    const out: number[] = [];
    let sum = this.open ? this.openDuration() : 0;
    if (this.open) out[this.segments.length] = sum;
    for (let i = this.segments.length - 1; i >= 0; i--) out[i] = sum += this.segments[i]!.duration;
    return out;
  }

  /** Drops parts older than the part window, and segments past the live or DVR window or the byte cap. */
  private trim(): void {
    const target = this.targetDuration;
    const fromEnd = this.secondsFromEnd(); // nothing is open here: closeSegment trims
    for (const [i, segment] of this.segments.entries()) {
      if (fromEnd[i]! <= 4 * target) break;
      for (const part of segment.parts) {
        if (!part.data) continue;
        this.keptBytes -= part.data.length;
        part.data = undefined;
      }
    }
    const { liveSegments, dvrWindowS, maxBytes } = this.options;
    let first = 0;
    while (this.segments.length - first > 1) {
      const overWindow =
        dvrWindowS > 0 ? fromEnd[first]! > dvrWindowS && this.segments.length - first > liveSegments : this.segments.length - first > liveSegments;
      if (!overWindow && this.keptBytes <= maxBytes) break;
      const gone = this.segments[first++]!;
      this.keptBytes -= gone.data?.length ?? 0;
      for (const part of gone.parts) this.keptBytes -= part.data?.length ?? 0;
      if (this.segments[first]!.discontinuity) this.discontinuitySequence++;
    }
    if (first === 0) return;
    this.segments.splice(0, first);
    // Inits no segment needs any more go too.
    for (const id of this.inits.keys()) if (id < this.segments[0]!.initId) this.inits.delete(id);
  }

  /** Bytes held: segments and the parts still listed. */
  get bytes(): number {
    return this.keptBytes;
  }
}
