/**
 * Per-stream retention on a shared frame stream. A bus shard keeps every stream's
 * frames `bus.maxAgeSeconds`; a stream that should keep less (`streams[].busMaxAgeSeconds`)
 * is trimmed by its origin, which knows where its keyframes were stored (their
 * JetStream sequence, from the publish ack): now and then it purges the rendition's
 * subjects up to the newest keyframe that is at least the retention old. What stays
 * starts at a keyframe, so a late reader can still decode from the first frame it
 * gets, and spans between the retention and the retention plus one GOP.
 *
 * Pure: time comes in as an argument, the purge goes out through a callback.
 */
export class RetentionTrimmer {
  /** Stored keyframes not yet trimmed away, oldest first: when stored (ms) and their sequence. */
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  /** Everything before this sequence has been purged (or asked to be). */
  private purgedBefore = 0;
  private lastPurgeAt = -Infinity;

  /**
   * @param maxAgeMs how long the rendition's frames are kept
   * @param purge asks the bus to drop the rendition's messages before `seq`
   * @param minIntervalMs at most one purge this often (a purge is a JetStream API call, through Raft in a cluster)
   */
  constructor(
    readonly maxAgeMs: number,
    private readonly purge: (beforeSeq: number) => void,
    private readonly minIntervalMs = Math.max(1000, maxAgeMs / 4),
  ) {}

  /** A keyframe of the rendition was stored at `seq`, acknowledged at `now` (ms). */
  keyframeStored(seq: number, now: number): void {
    if (seq <= this.purgedBefore) return; // a late ack of something already trimmed, or no sequence
    this.times.push(now);
    this.seqs.push(seq);
    if (now - this.lastPurgeAt < this.minIntervalMs) return;
    // The newest keyframe at least maxAgeMs old: everything before it can go.
    let cut = -1;
    for (let i = 0; i < this.times.length && now - this.times[i]! >= this.maxAgeMs; i++) cut = i;
    if (cut < 0) return;
    const before = this.seqs[cut]!;
    this.times.splice(0, cut);
    this.seqs.splice(0, cut);
    // Nothing is before the stream's first message (and a purge "before 1" would be read as unbounded).
    if (before <= this.purgedBefore || before <= 1) return;
    this.purgedBefore = before;
    this.lastPurgeAt = now;
    this.purge(before);
  }

  /** The purge up to `beforeSeq` did not happen: the next keyframe asks again. */
  failed(beforeSeq: number): void {
    if (this.purgedBefore === beforeSeq) {
      this.purgedBefore = 0;
      this.lastPurgeAt = -Infinity;
    }
  }
}
