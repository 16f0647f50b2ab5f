import { FrameDecoder, readToken, type FrameStamp } from './frame-codec.ts';
import type { Frame } from '../media/frame.ts';

/** What one bus message of a rendition comes to, once filtered. */
export type Filtered =
  /** A frame to use: in order, of the newest publication, starting at a keyframe after any gap. */
  | { kind: 'frame'; frame: Frame; stamp: FrameStamp; events: FilterEvents | undefined }
  /** The publication ended (its end marker). */
  | { kind: 'end'; events: FilterEvents | undefined }
  /** Nothing to use: see the reason (and the stats). */
  | { kind: 'skip'; reason: SkipReason; events: FilterEvents | undefined };

export type SkipReason =
  /** From an older publication than the newest seen: fenced off. */
  | 'stale'
  /** Not a frame this relay can read (`events.invalid` says why). */
  | 'invalid'
  /** Part of a frame split over several messages; the frame comes with the last part. */
  | 'partial'
  /** Sent again after a NATS outage, and stored the first time after all. */
  | 'duplicate'
  /** After a gap or a new publication, frames wait for the next random access point (video keyframe; audio of an audio-only stream). */
  | 'waiting-for-keyframe';

/** What happened on the way, for logs and metrics; undefined on the common path (no allocation). */
export interface FilterEvents {
  /** A newer publication (a higher fencing token) started: its clock starts over. */
  newPublication?: { token: number };
  /** Frames were missing on the bus: the counter expected and the one received. */
  gap?: { expected: number; got: number };
  /** The newest publication was silent past a lease's lifetime, so a lower token was accepted. */
  tokenForgotten?: { was: number; now: number };
  /** Why a message could not be read. */
  invalid?: string;
}

export interface FilterStats {
  frames: number;
  gaps: number;
  staleDropped: number;
  badMessages: number;
  duplicates: number;
}

/**
 * The publication filter of one rendition, pure (bytes and a clock in, decisions
 * out). It decodes bus messages and keeps what viewers may see:
 * - fencing: a message whose token is older than the newest seen is dropped before
 *   anything is decoded (an ex-owner still publishing), unless the newest has been
 *   silent longer than a lease lives (tokens started over: a lease bucket rebuilt);
 * - order: each publication's frames carry a counter; a gap is reported, and a frame
 *   seen already (sent again after NATS came back) is dropped;
 * - a clean start: after a gap, a bad message or a new publication, nothing passes
 *   until the next random access point: a video keyframe, or in an audio-only
 *   stream the next audio frame (the publisher marks it: it carries the init).
 */
export class PublicationFilter {
  private readonly decoder = new FrameDecoder();
  private token = -Infinity;
  private tokenSeenAt = 0;
  private expectedCounter: number | undefined;
  private needKeyframe = true;
  readonly stats: FilterStats = { frames: 0, gaps: 0, staleDropped: 0, badMessages: 0, duplicates: 0 };

  /** `forgetTokenAfterMs`: a lease's lifetime and some margin. */
  constructor(private readonly forgetTokenAfterMs: number) {}

  /**
   * Goes on from a point recorded earlier, as if it had seen everything before it: messages of publication `token`
   * from frame counter `nextCounter` on pass with no wait for a keyframe (a recorder resuming after a crash, mid-GOP).
   */
  resume(token: number, nextCounter: number, now: number): void {
    this.token = token;
    this.tokenSeenAt = now;
    this.expectedCounter = nextCounter >>> 0;
    this.needKeyframe = false;
  }

  /** The consumer was recreated: a half-reassembled frame will not be completed. */
  resetDecoder(): void {
    this.decoder.reset();
  }

  /** One message, `now` in ms on a monotonic clock (performance.now()). */
  push(data: Uint8Array, now: number): Filtered {
    let events: FilterEvents | undefined;
    const token = readToken(data);
    if (token !== undefined && token < this.token) {
      if (now - this.tokenSeenAt < this.forgetTokenAfterMs) {
        this.stats.staleDropped++;
        return { kind: 'skip', reason: 'stale', events };
      }
      events = { tokenForgotten: { was: this.token, now: token } };
      this.token = -Infinity;
    }
    if (token === this.token) this.tokenSeenAt = now;
    let msg;
    try {
      msg = this.decoder.decode(data);
    } catch (err) {
      this.stats.badMessages++;
      this.needKeyframe = true;
      return { kind: 'skip', reason: 'invalid', events: { ...events, invalid: (err as Error).message } };
    }
    if (msg.kind === 'partial') return { kind: 'skip', reason: 'partial', events };
    const { stamp } = msg;
    if (stamp.token > this.token) {
      this.token = stamp.token;
      this.tokenSeenAt = now;
      this.expectedCounter = undefined;
      this.needKeyframe = true;
      events = { ...events, newPublication: { token: stamp.token } };
    }
    const behind = this.expectedCounter === undefined ? 0 : (this.expectedCounter - stamp.counter) >>> 0;
    if (behind >= 1 && behind < 0x80000000) {
      this.stats.duplicates++;
      return { kind: 'skip', reason: 'duplicate', events };
    }
    if (this.expectedCounter !== undefined && stamp.counter !== this.expectedCounter) {
      this.stats.gaps++;
      this.needKeyframe = true;
      events = { ...events, gap: { expected: this.expectedCounter, got: stamp.counter } };
    }
    this.expectedCounter = (stamp.counter + 1) >>> 0;
    if (msg.kind === 'end') {
      this.needKeyframe = true;
      return { kind: 'end', events };
    }
    const { frame } = msg;
    this.stats.frames++;
    if (this.needKeyframe) {
      // A random access point the publisher marked (it carries the init): a video keyframe, or audio of an audio-only stream.
      if (!msg.syncPoint) return { kind: 'skip', reason: 'waiting-for-keyframe', events };
      this.needKeyframe = false;
    }
    return { kind: 'frame', frame, stamp, events };
  }
}
