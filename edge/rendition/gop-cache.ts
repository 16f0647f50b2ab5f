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

  constructor(private readonly maxBytes: number) {}

  push(fragment: Fragment): void {
    if (fragment.keyframe) {
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
