import type { Fragment } from '../../server/core/media/mp4/fmp4-muxer.ts';

/** A fragment's size without its headroom. */
const size = (f: Fragment) => f.buffer.length - f.offset;

/**
 * The current GOP, as the muxer's fragments from its keyframe on, so that a new
 * viewer of any egress starts on a keyframe at once. Bounded in bytes: a GOP longer than the
 * cap stops being cached (a new viewer then waits for the next keyframe).
 */
export class GopCache {
  private fragments: Fragment[] = [];
  private bytes = 0;
  private overflowed = false;
  /** Decode time of the last keyframe, and the time from the one before it to it (90 kHz). */
  private lastKeyframeTime: number | undefined;
  gopTicks: number | undefined;

  constructor(private readonly maxBytes: number) {}

  push(fragment: Fragment): void {
    if (fragment.keyframe) {
      // Between two keyframes with pictures in between: a GOP (not audio-only fragments, each a random access point).
      if (this.lastKeyframeTime !== undefined && this.fragments.length > 1) {
        const gop = fragment.time - this.lastKeyframeTime;
        if (gop > 0 && gop < 60 * 90_000) this.gopTicks = gop;
      }
      this.lastKeyframeTime = fragment.time;
      this.fragments = [];
      this.bytes = 0;
      this.overflowed = false;
    } else if (this.fragments.length === 0 || this.overflowed) {
      return; // no keyframe to start from
    }
    if (this.bytes + size(fragment) > this.maxBytes) {
      this.overflowed = true;
      this.fragments = [];
      this.bytes = 0;
      return;
    }
    this.fragments.push(fragment);
    this.bytes += size(fragment);
  }

  clear(): void {
    this.lastKeyframeTime = undefined;
    this.fragments = [];
    this.bytes = 0;
    this.overflowed = false;
  }

  /** From the last keyframe on; empty when there is none to start from. */
  get current(): readonly Fragment[] {
    return this.fragments;
  }

  get size(): { fragments: number; bytes: number } {
    return { fragments: this.fragments.length, bytes: this.bytes };
  }
}
