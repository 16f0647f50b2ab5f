// What a recorder makes of one rendition's bus messages, pure: messages and their bus positions in, in order; what to
// store and what to acknowledge out. The recorder's adapter (NATS, storage) runs it; tests run it with bytes, crash it
// at any point and resume it.
import { PublicationFilter } from '../server/core/bus/publication-filter.ts';
import type { Frame } from '../server/core/media/frame.ts';
import { RecordingTrack, type RecordedSegment, type ResumePoint } from './recording-track.ts';

export type TapeEvent<P> =
  /** A publication's first frame here: its recording begins (or, resumed, goes on). Numbering below starts from 0 for it. */
  | { kind: 'begin'; token: number; first: Frame }
  | { kind: 'init'; id: number; data: Buffer }
  | { kind: 'segment'; segment: RecordedSegment<P> }
  /** Frames are missing: the frame counter expected and the one that came (logged; the segments show a discontinuity). */
  | { kind: 'gap'; expected: number; got: number }
  /** The publication is over (its end marker at `ack`, or another took over: no position). */
  | { kind: 'end'; ack: P | undefined };

/**
 * One rendition's recording as a tape: the publication filter (fencing, order, duplicates, gaps) feeding the
 * segmenter. Segments and inits are numbered from 0 and 1 for each publication begun here; a recording resumed after a
 * crash adds what it had stored.
 */
export class RenditionTape<P> {
  private readonly filter: PublicationFilter;
  private track: RecordingTrack<P> | undefined;
  private token: number | undefined;
  private prev: P | undefined;
  /** The position before the first part of a frame split over several messages. */
  private partBefore: P | undefined;
  /** Frames went missing before a publication began here (a recorder resumed past the bus's retention). */
  private gapBeforeTrack = false;
  private resumed = false;
  gaps = 0;

  constructor(
    private readonly segmentSeconds: number,
    forgetTokenAfterMs: number,
  ) {
    this.filter = new PublicationFilter(forgetTokenAfterMs);
  }

  /** Goes on where stored segments end (see RecordedSegment.resume), before the first message. */
  resumeAt(point: ResumePoint, now: number): void {
    this.filter.resume(point.token, point.nextCounter, now);
    this.resumed = true;
  }

  /** One bus message at `position`, `now` on a monotonic clock (ms). */
  push(data: Uint8Array, position: P, now: number): TapeEvent<P>[] {
    const before = this.partBefore ?? this.prev;
    const out = this.filter.push(data, now);
    if (out.kind === 'skip' && out.reason === 'partial') {
      this.partBefore ??= this.prev;
      this.prev = position;
      return [];
    }
    this.partBefore = undefined;
    this.prev = position;
    const events: TapeEvent<P>[] = [];
    if (out.events?.gap) {
      this.gaps++;
      events.push({ kind: 'gap', ...out.events.gap });
      if (this.track) this.add(events, this.track.gap());
      else this.gapBeforeTrack = true;
    }
    const next = out.events?.newPublication;
    if (next && this.track && this.token !== next.token) this.end(events, undefined); // taken over, with no end marker
    if (out.kind === 'end') {
      if (this.track) this.end(events, position);
      else events.push({ kind: 'end', ack: position });
      return events;
    }
    if (out.kind !== 'frame') return events;
    if (!this.track) {
      this.track = new RecordingTrack<P>(this.segmentSeconds);
      this.token = out.stamp.token;
      events.push({ kind: 'begin', token: out.stamp.token, first: out.frame });
      // Resumed after frames went missing: the next segment follows a discontinuity.
      if (this.gapBeforeTrack && this.resumed) this.track.gap();
      this.gapBeforeTrack = false;
      this.resumed = false;
    }
    this.add(events, this.track.push(out.frame, out.stamp, before, position));
    return events;
  }

  /** Stops recording now (an operator asked): what is open comes out, the last segment, and the end. */
  finish(): TapeEvent<P>[] {
    const events: TapeEvent<P>[] = [];
    if (this.track) this.end(events, undefined);
    return events;
  }

  /** Whether a publication is being recorded (begun, not ended). */
  get recording(): boolean {
    return this.track !== undefined;
  }

  private end(events: TapeEvent<P>[], ack: P | undefined): void {
    // The last segment is let go of with the end marker, once the playlist says VOD.
    this.add(events, this.track!.end(undefined));
    events.push({ kind: 'end', ack });
    this.track = undefined;
    this.token = undefined;
  }

  private add(events: TapeEvent<P>[], outputs: ReturnType<RecordingTrack<P>['gap']>): void {
    for (const o of outputs) events.push(o.kind === 'init' ? o : { kind: 'segment', segment: o.segment });
  }
}
