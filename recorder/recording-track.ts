// One rendition of one recording, pure: frames of one publication in, in order; init segments and CMAF media
// segments out, each with what a crashed recorder needs to go on exactly after it (the bus position to acknowledge,
// and the frame counter to resume at). No clock, no files, no NATS: the recorder writes, acknowledges and resumes.
import type { FrameStamp } from '../server/core/bus/frame-codec.ts';
import { isRandomAccess, TICKS_PER_SECOND, type Frame, type StreamInit } from '../server/core/media/frame.ts';
import { Fmp4Muxer, fragmentBytes, type Fragment } from '../server/core/media/mp4/fmp4-muxer.ts';
import { buildInitSegment } from '../server/core/media/mp4/init-segment.ts';

/** Where a resumed publication filter goes on: the first frame not in a written segment. */
export interface ResumePoint {
  token: number;
  nextCounter: number;
}

export interface RecordedSegment<P> {
  /** 0, 1, 2... from the track's start (a resumed recording adds the segments it had).  */
  index: number;
  /** The init segment (EXT-X-MAP) it is decoded with. */
  initId: number;
  /** Something is missing before it (frames lost on the bus), or its init changed: EXT-X-DISCONTINUITY. */
  discontinuity: boolean;
  /** Decode time of its first fragment, 90 kHz, on the publisher's clock. */
  start: number;
  /** Seconds: to the next segment's start, or (the last before a gap or the end) its last frame's end. */
  duration: number;
  /** Ingest wall-clock time of its first frame (ms since the epoch): EXT-X-PROGRAM-DATE-TIME. */
  programDateTime: number;
  /** Its fragments (`[prft] moof mdat` each), in order: the file is their concatenation. */
  chunks: Buffer[];
  bytes: number;
  videoFrames: number;
  audioFrames: number;
  /** The last bus position wholly in this segment or before it: acknowledged once the segment is stored. */
  ack: P | undefined;
  /** Where to resume after it; undefined for the last one (the recording is over). */
  resume: ResumePoint | undefined;
}

export type TrackOutput<P> = { kind: 'init'; id: number; data: Buffer } | { kind: 'segment'; segment: RecordedSegment<P> };

interface OpenSegment<P> {
  initId: number;
  discontinuity: boolean;
  start: number;
  programDateTime: number;
  chunks: Buffer[];
  bytes: number;
  videoFrames: number;
  audioFrames: number;
  lastTime: number;
  /** The last frame muxed into it: its last message's position and its counter. */
  last: { at: P; counter: number };
}

/** Frames that reached the muxer and are not yet in a fragment: where the first of them sits. */
interface Pending<P> {
  before: P | undefined;
  counter: number;
}

/** Frames held until the first random access point (what the muxer needs first): a GOP's worth at most. */
const MAX_HELD = 1000;

/**
 * Cuts a rendition into segments of whole GOPs: a segment starts at the first random access point after
 * `segmentSeconds` (a video keyframe; any audio fragment of an audio-only stream). Fragments come from the same muxer
 * as every viewer's. A new codec configuration (a new init) starts a new segment after EXT-X-DISCONTINUITY with its
 * own EXT-X-MAP; so does the first one after frames went missing (`gap()`), never gluing times together.
 *
 * Positions `P` are the bus's (a sequence and whatever acknowledges it). Each frame comes with the position of the
 * last message before its own first one (`before`) and of its own last one (`at`), so that what a segment lets go
 * of is exact even while audio waits in the muxer for the next video frame: a recorder resumed at a segment's
 * `resume` point, from its `ack`, writes the same next segment as if it had never stopped.
 */
export class RecordingTrack<P> {
  private muxer: Fmp4Muxer | undefined;
  private initId = 0;
  private nextIndex = 0;
  private open: OpenSegment<P> | undefined;
  private discontinuity = false;
  private pending: Pending<P> | undefined;
  /** Frames before the first random access point (a resumed recorder starts mid-GOP, with audio first). */
  private held: { frame: Frame; stamp: FrameStamp; before: P | undefined; at: P }[] = [];
  private token = 0;
  private frameTicks = 3000;
  private lastTime: number | undefined;
  /** Audio frames in the muxer, counted into the fragment that takes them. */
  private queuedAudio = 0;
  private lastQueued: { at: P; counter: number } | undefined;

  constructor(private readonly segmentSeconds: number) {}

  /** A frame of the publication, in order, with the bus positions before its first message and of its last. */
  push(frame: Frame, stamp: FrameStamp, before: P | undefined, at: P): TrackOutput<P>[] {
    const out: TrackOutput<P>[] = [];
    this.token = stamp.token;
    if (isRandomAccess(frame) && (!this.muxer || this.muxer.init !== frame.init)) {
      if (this.muxer) {
        // A new codec configuration: what the old muxer holds ends the open segment, which ends here.
        const rest = this.muxer.flushAudio();
        if (rest) this.fragment(rest, 0, out);
        this.close(out, { ack: before, resume: { token: stamp.token, nextCounter: stamp.counter } });
        this.discontinuity = true;
      }
      this.newInit(frame.init, out);
      const held = this.held;
      this.held = [];
      // Audio from before the keyframe, in order (video before it cannot be decoded without its own keyframe).
      for (const h of held) if (h.frame.track === 'audio') this.mux(h.frame, h.stamp, h.before, h.at, out);
    }
    if (!this.muxer) {
      if (this.held.length < MAX_HELD) this.held.push({ frame, stamp, before, at });
      return out;
    }
    this.mux(frame, stamp, before, at, out);
    return out;
  }

  private mux(frame: Frame, stamp: FrameStamp, before: P | undefined, at: P, out: TrackOutput<P>[]): void {
    const muxer = this.muxer!;
    this.pending ??= { before, counter: stamp.counter };
    if (frame.track === 'audio' && frame.codec === muxer.init.audio?.codec) this.queuedAudio++;
    this.lastQueued = { at, counter: stamp.counter };
    const fragment = muxer.push(frame);
    if (fragment) this.fragment(fragment, frame.track === 'video' ? 1 : 0, out);
  }

  /**
   * Frames went missing (the bus lost them, or a recorder came back past the bus's retention): what is open closes,
   * and the next segment (at the next keyframe) follows a discontinuity.
   */
  gap(): TrackOutput<P>[] {
    const out: TrackOutput<P>[] = [];
    const seg = this.open;
    if (seg) this.close(out, { ack: seg.last.at, resume: { token: this.token, nextCounter: (seg.last.counter + 1) >>> 0 } });
    this.muxer = this.muxer && new Fmp4Muxer(this.muxer.init);
    this.pending = undefined;
    this.queuedAudio = 0;
    this.held = [];
    this.discontinuity = true;
    this.lastTime = undefined;
    return out;
  }

  /** The publication ended (or another took over): what the muxer holds and the open segment come out, the last. */
  end(endPosition: P | undefined): TrackOutput<P>[] {
    const out: TrackOutput<P>[] = [];
    const rest = this.muxer?.flushAudio();
    if (rest) this.fragment(rest, 0, out);
    this.close(out, { ack: endPosition, resume: undefined });
    this.muxer = undefined;
    return out;
  }

  private newInit(init: StreamInit, out: TrackOutput<P>[]): void {
    this.muxer = new Fmp4Muxer(init);
    this.initId++;
    this.queuedAudio = 0;
    this.pending = undefined;
    out.push({ kind: 'init', id: this.initId, data: buildInitSegment(init) });
  }

  private fragment(fragment: Fragment, videoFrames: number, out: TrackOutput<P>[]): void {
    const { time } = fragment;
    if (this.lastTime !== undefined) {
      const step = time - this.lastTime;
      if (step > 0 && step < TICKS_PER_SECOND) this.frameTicks = step;
    }
    this.lastTime = time;
    const open = this.open;
    if (open && fragment.keyframe && (time - open.start) / TICKS_PER_SECOND >= this.segmentSeconds * 0.95) {
      // What this fragment holds starts the next segment: let go of everything before its first frame.
      const pending = this.pending!;
      this.close(out, { ack: pending.before, resume: { token: this.token, nextCounter: pending.counter } }, time);
    }
    const last = this.lastQueued!;
    this.pending = undefined; // everything the muxer had is in this fragment
    if (!this.open) {
      if (!fragment.keyframe) return; // a segment starts at a random access point
      this.open = {
        initId: this.initId,
        discontinuity: this.discontinuity,
        start: time,
        programDateTime: fragment.receivedAt,
        chunks: [],
        bytes: 0,
        videoFrames: 0,
        audioFrames: 0,
        lastTime: time,
        last,
      };
      this.discontinuity = false;
    }
    const seg = this.open;
    const bytes = fragmentBytes(fragment);
    seg.chunks.push(bytes);
    seg.bytes += bytes.length;
    seg.videoFrames += videoFrames;
    seg.audioFrames += this.queuedAudio;
    seg.lastTime = time;
    seg.last = last;
    this.queuedAudio = 0;
  }

  /** Closes the open segment; its duration runs to `nextStart` (the next segment's first time), else to its last frame's end. */
  private close(out: TrackOutput<P>[], after: { ack: P | undefined; resume: ResumePoint | undefined }, nextStart?: number): void {
    const seg = this.open;
    if (!seg) return;
    this.open = undefined;
    const end = nextStart ?? seg.lastTime + this.frameTicks;
    out.push({
      kind: 'segment',
      segment: {
        index: this.nextIndex++,
        initId: seg.initId,
        discontinuity: seg.discontinuity,
        start: seg.start,
        duration: (end - seg.start) / TICKS_PER_SECOND,
        programDateTime: seg.programDateTime,
        chunks: seg.chunks,
        bytes: seg.bytes,
        videoFrames: seg.videoFrames,
        audioFrames: seg.audioFrames,
        ack: after.ack,
        resume: after.resume,
      },
    });
  }
}
