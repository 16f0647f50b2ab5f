/**
 * Messages published and waiting for their JetStream acknowledgement, by id. Ids
 * are handed out in order, so the entries live in a ring (parallel arrays, grown
 * when full): no object, promise or timer per message. Acknowledgements may
 * arrive in any order; expiry walks from the oldest entry only.
 */
/** Called once a message is stored, with its sequence in the frame stream (0 when the ack did not say). */
export type OnStored = (seq: number) => void;

/** How an entry ended: stored (`ok`, at `seq`), refused by JetStream, or expired (`ok` false). */
export type Settled = (ok: boolean, subject: string, onFailure: () => void, onStored: OnStored | undefined, expired: boolean, seq: number) => void;

/** An unsettled entry handed back (to be sent again): what it was sent with. */
export type Unsettled = (subject: string, data: Buffer, onFailure: () => void, onStored: OnStored | undefined, valid: () => boolean) => void;

export class PendingAcks {
  private capacity: number;
  private subject: string[];
  private data: (Buffer | undefined)[];
  private valid: ((() => boolean) | undefined)[];
  private sentAt: Float64Array;
  private onFailure: ((() => void) | undefined)[];
  private onStored: (OnStored | undefined)[];
  private waiting: Uint8Array;
  /** Id of the oldest entry still in the ring (settled or not), and the next id to hand out. */
  private head = 0;
  private next = 0;
  /** Entries not yet settled. */
  size = 0;

  constructor(
    private readonly settled: Settled,
    initialCapacity = 1024,
  ) {
    this.capacity = 1 << Math.ceil(Math.log2(Math.max(2, initialCapacity)));
    this.subject = new Array<string>(this.capacity);
    this.data = new Array<Buffer | undefined>(this.capacity);
    this.valid = new Array<(() => boolean) | undefined>(this.capacity);
    this.sentAt = new Float64Array(this.capacity);
    this.onFailure = new Array<(() => void) | undefined>(this.capacity);
    this.onStored = new Array<OnStored | undefined>(this.capacity);
    this.waiting = new Uint8Array(this.capacity);
  }

  /**
   * Registers a message sent at `now`; returns its id. `data` and `valid` are kept
   * so that an unacknowledged message can be sent again (`takeUnsettled`).
   */
  add(now: number, subject: string, data: Buffer, valid: () => boolean, onFailure: () => void, onStored?: OnStored): number {
    if (this.next - this.head === this.capacity) this.grow();
    const id = this.next++;
    const i = id & (this.capacity - 1);
    this.sentAt[i] = now;
    this.subject[i] = subject;
    this.data[i] = data;
    this.valid[i] = valid;
    this.onFailure[i] = onFailure;
    this.onStored[i] = onStored;
    this.waiting[i] = 1;
    this.size++;
    return id;
  }

  /**
   * Settles a message: stored (`ok`) or refused. Returns its publish -> settle time
   * in ms, or -1 when the id is unknown or already settled (a late or repeated ack).
   */
  settle(id: number, ok: boolean, now: number, seq = 0): number {
    if (id < this.head || id >= this.next) return -1;
    const i = id & (this.capacity - 1);
    if (!this.waiting[i]) return -1;
    const elapsed = now - this.sentAt[i]!;
    const subject = this.subject[i]!;
    const onFailure = this.onFailure[i]!;
    const onStored = this.onStored[i];
    this.clear(i);
    this.advance();
    this.settled(ok, subject, onFailure, onStored, false, seq);
    return elapsed;
  }

  /** Fails every message older than `timeoutMs` (oldest first); returns how many. */
  expire(now: number, timeoutMs: number): number {
    let failed = 0;
    while (this.head < this.next) {
      const i = this.head & (this.capacity - 1);
      if (this.waiting[i]) {
        if (now - this.sentAt[i]! < timeoutMs) break;
        const subject = this.subject[i]!;
        const onFailure = this.onFailure[i]!;
        const onStored = this.onStored[i];
        this.clear(i);
        failed++;
        this.settled(false, subject, onFailure, onStored, true, 0);
      }
      this.head++;
    }
    return failed;
  }

  /**
   * Hands back every unsettled message, oldest first, and forgets them: their acks
   * will not come (the connection that carried them is gone). Acks for their old
   * ids that do arrive are ignored.
   */
  takeUnsettled(visit: Unsettled): number {
    let taken = 0;
    for (let id = this.head; id < this.next; id++) {
      const i = id & (this.capacity - 1);
      if (!this.waiting[i]) continue;
      const subject = this.subject[i]!;
      const data = this.data[i]!;
      const onFailure = this.onFailure[i]!;
      const onStored = this.onStored[i];
      const valid = this.valid[i]!;
      this.clear(i);
      taken++;
      visit(subject, data, onFailure, onStored, valid);
    }
    this.head = this.next;
    return taken;
  }

  private clear(i: number): void {
    this.waiting[i] = 0;
    this.subject[i] = '';
    this.data[i] = undefined;
    this.valid[i] = undefined;
    this.onFailure[i] = undefined;
    this.onStored[i] = undefined;
    this.size--;
  }

  /** Drops settled entries from the front, so the ring only holds the window. */
  private advance(): void {
    while (this.head < this.next && !this.waiting[this.head & (this.capacity - 1)]) this.head++;
  }

  private grow(): void {
    const old = {
      capacity: this.capacity,
      sentAt: this.sentAt,
      subject: this.subject,
      data: this.data,
      valid: this.valid,
      onFailure: this.onFailure,
      onStored: this.onStored,
      waiting: this.waiting,
    };
    this.capacity *= 2;
    this.sentAt = new Float64Array(this.capacity);
    this.subject = new Array<string>(this.capacity);
    this.data = new Array<Buffer | undefined>(this.capacity);
    this.valid = new Array<(() => boolean) | undefined>(this.capacity);
    this.onFailure = new Array<(() => void) | undefined>(this.capacity);
    this.onStored = new Array<OnStored | undefined>(this.capacity);
    this.waiting = new Uint8Array(this.capacity);
    for (let id = this.head; id < this.next; id++) {
      const from = id & (old.capacity - 1);
      const to = id & (this.capacity - 1);
      this.sentAt[to] = old.sentAt[from]!;
      this.subject[to] = old.subject[from]!;
      this.data[to] = old.data[from];
      this.valid[to] = old.valid[from];
      this.onFailure[to] = old.onFailure[from];
      this.onStored[to] = old.onStored[from];
      this.waiting[to] = old.waiting[from]!;
    }
  }
}
