/** A fragment ready to go on the wire to every viewer (one shared buffer). */
export interface WireFragment {
  bytes: Buffer;
  keyframe: boolean;
  receivedAt: number;
}

/**
 * The current GOP, as wire-ready fragments from its keyframe on, so that a new
 * viewer starts on a keyframe at once. Bounded in bytes: a GOP longer than the
 * cap stops being cached (a new viewer then waits for the next keyframe).
 */
export class GopCache {
  private fragments: WireFragment[] = [];
  private bytes = 0;
  private overflowed = false;

  constructor(private readonly maxBytes: number) {}

  push(fragment: WireFragment): void {
    if (fragment.keyframe) {
      this.fragments = [];
      this.bytes = 0;
      this.overflowed = false;
    } else if (this.fragments.length === 0 || this.overflowed) {
      return; // no keyframe to start from
    }
    if (this.bytes + fragment.bytes.length > this.maxBytes) {
      this.overflowed = true;
      this.fragments = [];
      this.bytes = 0;
      return;
    }
    this.fragments.push(fragment);
    this.bytes += fragment.bytes.length;
  }

  clear(): void {
    this.fragments = [];
    this.bytes = 0;
    this.overflowed = false;
  }

  /** From the last keyframe on; empty when there is none to start from. */
  get current(): readonly WireFragment[] {
    return this.fragments;
  }

  get size(): { fragments: number; bytes: number } {
    return { fragments: this.fragments.length, bytes: this.bytes };
  }
}
