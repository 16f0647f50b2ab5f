import { EventEmitter } from 'node:events';
import type { Logger } from '../log.ts';
import { isRandomAccess, type Frame, type StreamInit } from '../media/frame.ts';
import { encodeEnd, encodeFrame, encodeInit } from './frame-codec.ts';
import { isStoredAck, newInbox, purgeSubjectBefore, storedAckSeq, type NatsConnection, type Msg, type Subscription } from './nats.ts';
import { PendingAcks, type OnStored } from './pending-acks.ts';
import { RetentionTrimmer } from './stream-retention.ts';
import type { StreamSubjects } from './subjects.ts';

export interface PublisherOptions {
  /**
   * Messages published and not yet acknowledged, per lane (a lane per bus shard: the frame stream
   * its publications' subjects go to), before pushing back on that lane's publishers.
   */
  window: number;
  timeoutMs: number;
  log: Logger;
  /** Called with each acknowledged message's publish -> ack time, in seconds (the publish-latency metric). */
  acked?: (seconds: number) => void;
}

export interface PublisherStats {
  published: number;
  failed: number;
  inFlight: number;
  /** Messages sent again after NATS came back (unacknowledged when it went, or held while it was away). */
  resent: number;
}

/** A message waiting for NATS to come back. Objects only on that rare path. */
interface Held {
  subject: string;
  data: Buffer;
  onFailure: () => void;
  onStored: OnStored | undefined;
  valid: () => boolean;
}

/**
 * The frames in flight to one JetStream stream (one shard), counted apart so that a shard whose
 * leader is gone, its acknowledgements waiting out their timeout, pauses only its own
 * publishers: with one window for all, it filled the window and paused every stream of the
 * origin (measured: a 1.25 s gap in a stream of a healthy shard).
 */
export interface Lane {
  inFlight: number;
}

/** Bytes held while NATS is away, beyond which new messages fail (a WHIP source cannot be paused). */
const MAX_HELD_BYTES = 64 * 1024 * 1024;
const always = () => true;

/**
 * Publishes frames to JetStream on a connection of its own, in order, with a
 * bounded window of in-flight acknowledgements. When the window is full,
 * `publish` returns false and 'drain' follows once half of it is free: ingest
 * pauses its publisher socket meanwhile (back-pressure all the way to OBS).
 *
 * Each message is a plain publish whose reply subject is one wildcard inbox
 * subscription plus the message's id; JetStream answers there with its ack. One
 * timer expires missing acks. nats.js's `js.publish` does the same job with a
 * request per message (a promise, a timer and two Error objects with stack traces
 * each): that cost 80 us per frame here, most of an origin core at 100 renditions.
 */
export class FramePublisher extends EventEmitter<{ drain: []; failure: [Error] }> {
  private readonly maxMessageBytes: number;
  readonly stats: PublisherStats = { published: 0, failed: 0, inFlight: 0, resent: 0 };
  private lastFailureLog = 0;
  private idleWaiters: (() => void)[] = [];
  /** While disconnected, messages wait here (and the window fills, pausing publishers). */
  private connected = true;
  private held: Held[] = [];
  private heldBytes = 0;
  private readonly pending: PendingAcks;
  private readonly inbox: string;
  private readonly acks: Subscription;
  private readonly expiry: NodeJS.Timeout;
  private readonly publishOptions: { reply: string } = { reply: '' };
  private readonly lanes = new Map<string, Lane>();
  /** Some publication is trimmed to its own retention: acks' sequences are read (see `retention`). */
  private trimming = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: PublisherOptions,
  ) {
    super();
    this.setMaxListeners(0); // one 'drain' listener per paused stream: as many as the origin carries
    this.pending = new PendingAcks(
      (ok, subject, onFailure, onStored, expired, seq) => {
        if (ok) this.stored(onStored, seq);
        else this.failed(subject, new Error(expired ? 'no acknowledgement from JetStream in time' : 'JetStream refused the message'), onFailure);
      },
      Math.max(1024, options.window * 4),
    );
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.disconnected();
        else if (s.type === 'reconnect') this.reconnected();
      }
    })().catch(() => {});
    // Room for the NATS protocol line and a margin below the server's max_payload.
    this.maxMessageBytes = Math.max(4096, (nc.info?.max_payload ?? 1024 * 1024) - 1024);
    this.inbox = newInbox(nc) + '.';
    this.acks = nc.subscribe(`${this.inbox}*`, {
      callback: (err, msg) => {
        if (!err) this.onAck(msg);
      },
    });
    this.expiry = setInterval(() => this.expire(), Math.min(250, Math.max(10, options.timeoutMs / 4)));
    this.expiry.unref();
  }

  /** Whether a lane's window is full: its publishers pause until 'drain'. */
  full(lane: Lane): boolean {
    return lane.inFlight >= this.options.window;
  }

  /** @internal One of a lane's messages was stored or failed: 'drain' when half its window is free again. */
  laneSettled(lane: Lane): void {
    lane.inFlight--;
    if (lane.inFlight === Math.floor(this.options.window / 2)) this.emit('drain');
  }

  /**
   * Starts a publication: one stream rendition (its subjects, in its shard: BusLayout) under one lease. `token` is the
   * lease's fencing token; `mayPublish` is asked before every message and a
   * false stops the publication for good (a lease that may have been lost). `retention`, when the
   * stream keeps less than its shard, hears where each keyframe was stored and trims what is older.
   */
  open(subjects: StreamSubjects, token: number, mayPublish: () => boolean = () => true, retention?: RetentionTrimmer): Publication {
    // The lane of the subjects' shard: their prefix, the subject without <stream>.<rendition>.
    const key = subjects.base.slice(0, subjects.base.lastIndexOf('.', subjects.base.lastIndexOf('.') - 1));
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { inFlight: 0 }));
    return new Publication(this, subjects, lane, token, this.maxMessageBytes, mayPublish, retention);
  }

  /**
   * A trimmer keeping one rendition's frames `maxAgeMs` in its shard `jsStream` (which keeps
   * every stream longer): for `open`. A failed purge is logged (at most every 5 s) and retried at
   * the next keyframe; the shard's own max age bounds what stays meanwhile.
   */
  retention(jsStream: string, subjects: StreamSubjects, maxAgeMs: number): RetentionTrimmer {
    this.trimming = true;
    let trimmed = 0;
    const trimmer = new RetentionTrimmer(maxAgeMs, (beforeSeq) => {
      purgeSubjectBefore(this.nc, jsStream, subjects.all, beforeSeq).then(
        (purged) => {
          trimmed += purged;
          this.options.log.debug({ subject: subjects.all, beforeSeq, purged, trimmed }, 'stream trimmed to its retention');
        },
        (err: unknown) => {
          trimmer.failed(beforeSeq);
          const now = Date.now();
          if (now - this.lastFailureLog > 5000) {
            this.lastFailureLog = now;
            this.options.log.warn(
              { code: 'BUS_TRIM_FAILED', subject: subjects.all, err: (err as Error).message },
              'could not trim a stream to its retention; retrying',
            );
          }
        },
      );
    });
    return trimmer;
  }

  /** Resolves when every message sent so far has been acknowledged or has failed. */
  idle(): Promise<void> {
    if (this.stats.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * @internal Sends one message; `onFailure` runs if JetStream does not store it.
   * `valid` is asked again before a message held while NATS was away goes out: a
   * publication whose lease may have run out meanwhile must not land late.
   */
  send(subject: string, data: Buffer, onFailure: () => void, onStored?: OnStored, valid: () => boolean = always): void {
    this.stats.inFlight++;
    if (this.connected) this.publishNow(subject, data, onFailure, onStored, valid);
    else this.hold({ subject, data, onFailure, onStored, valid });
  }

  private publishNow(subject: string, data: Buffer, onFailure: () => void, onStored: OnStored | undefined, valid: () => boolean): void {
    const id = this.pending.add(performance.now(), subject, data, valid, onFailure, onStored);
    this.publishOptions.reply = this.inbox + id;
    try {
      this.nc.publish(subject, data, this.publishOptions);
    } catch {
      this.pending.settle(id, false, performance.now()); // a closed connection
    }
  }

  private hold(message: Held): void {
    if (this.heldBytes + message.data.length > MAX_HELD_BYTES) {
      queueMicrotask(() => this.failed(message.subject, new Error('NATS has been away too long: too much held'), message.onFailure));
      return;
    }
    this.held.push(message);
    this.heldBytes += message.data.length;
  }

  /**
   * NATS went away: what was sent and not acknowledged may never have been stored,
   * so it waits with what comes next, in order, to be sent again. (A copy stored
   * after all is a duplicate the edge drops by its frame counter.)
   */
  private disconnected(): void {
    this.connected = false;
    const unsettled: Held[] = [];
    this.pending.takeUnsettled((subject, data, onFailure, onStored, valid) => void unsettled.push({ subject, data, onFailure, onStored, valid }));
    this.held = [...unsettled, ...this.held];
    this.heldBytes += unsettled.reduce((a, m) => a + m.data.length, 0);
  }

  /** NATS is back: everything held goes out in order, unless its publication may no longer publish. */
  private reconnected(): void {
    this.connected = true;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const m of held) {
      if (!m.valid()) {
        this.failed(m.subject, new Error('held while NATS was away, and the publication may no longer publish'), m.onFailure);
        continue;
      }
      this.stats.resent++;
      this.publishNow(m.subject, m.data, m.onFailure, m.onStored, m.valid);
    }
    if (held.length) this.options.log.info({ resent: held.length }, 'NATS is back: held frames sent in order');
  }

  /** A JetStream answer to one of our publishes, on our ack inbox. */
  private onAck(msg: Msg): void {
    const id = Number(msg.subject.slice(this.inbox.length));
    const ok = isStoredAck(msg.data);
    // The stored sequence matters only to a stream trimmed to its own retention: read it only then.
    const ms = this.pending.settle(id, ok, performance.now(), ok && this.trimming ? storedAckSeq(msg.data) : 0);
    if (ok && ms >= 0) this.options.acked?.(ms / 1000);
  }

  private expire(): void {
    this.pending.expire(performance.now(), this.options.timeoutMs);
  }

  private stored(onStored: OnStored | undefined, seq: number): void {
    this.stats.published++;
    onStored?.(seq);
    this.settle();
  }

  private failed(subject: string, err: Error, onFailure: () => void): void {
    this.stats.failed++;
    onFailure();
    const now = Date.now();
    if (now - this.lastFailureLog > 5000) {
      this.lastFailureLog = now;
      this.options.log.warn(
        { code: 'BUS_PUBLISH_FAILED', subject, err: err.message, failed: this.stats.failed },
        'frame publish failed; the stream resumes at its next keyframe',
      );
    }
    this.emit('failure', err);
    this.settle();
  }

  private settle(): void {
    this.stats.inFlight--;
    if (this.stats.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  async close(): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const m of held) this.failed(m.subject, new Error('closing while NATS is away'), m.onFailure);
    await this.idle();
    clearInterval(this.expiry);
    this.acks.unsubscribe();
    await this.nc.drain().catch(() => {});
  }
}

/** One rendition of one live stream being published: counters, init caching, resync after loss. */
export class Publication {
  private counter = 0;
  private lastInit: StreamInit | undefined;
  private lastInitBytes: Buffer | undefined;
  /** After a lost message the stream resumes at the next keyframe. */
  private resync = false;
  private ended = false;
  /** A message of this publication was not stored: resume at the next keyframe. */
  private readonly lost = () => {
    this.resync = true;
    this.publisher.laneSettled(this.lane);
  };
  private readonly stored = () => this.publisher.laneSettled(this.lane);
  /** A keyframe was stored at `seq`: where a trimmed stream may start. */
  private readonly storedKeyframe = (seq: number) => {
    this.publisher.laneSettled(this.lane);
    this.retention?.keyframeStored(seq, Date.now());
  };

  constructor(
    private readonly publisher: FramePublisher,
    readonly subjects: StreamSubjects,
    private readonly lane: Lane,
    readonly token: number,
    private readonly maxMessageBytes: number,
    private readonly mayPublish: () => boolean,
    private readonly retention?: RetentionTrimmer,
  ) {}

  /** Publishes a frame; false means the window is full (pause the source until 'drain'). */
  push(frame: Frame): boolean {
    if (this.ended) return true;
    if (!this.mayPublish()) {
      this.ended = true; // never publish on a lease that may have been lost
      return true;
    }
    // A random access point (a video keyframe; any frame of an audio-only stream) carries the init, on the keyframe subject.
    const isKey = isRandomAccess(frame);
    if (this.resync) {
      if (!isKey) return !this.publisher.full(this.lane);
      this.resync = false;
    }
    let initBytes: Buffer | undefined;
    if (isKey) {
      if (frame.init !== this.lastInit) {
        this.lastInit = frame.init;
        this.lastInitBytes = encodeInit(frame.init);
      }
      initBytes = this.lastInitBytes;
    }
    const messages = encodeFrame(frame, { counter: this.counter++, token: this.token }, isKey, this.maxMessageBytes, initBytes);
    const subject = isKey
      ? this.subjects.keyframe
      : frame.track === 'video'
        ? this.subjects.delta
        : frame.codec === frame.init.audio?.codec
          ? this.subjects.audio
          : this.subjects.opus;
    for (let i = 0; i < messages.length; i++) {
      this.lane.inFlight++;
      this.publisher.send(
        i === 0 ? subject : this.subjects.part,
        messages[i]!,
        this.lost,
        i === 0 && isKey ? this.storedKeyframe : this.stored,
        this.mayPublish,
      );
    }
    return !this.publisher.full(this.lane);
  }

  /**
   * Stops publishing without an end marker: a newer publication of the stream (a
   * takeover, with a higher fencing token) goes on where this one stops, so viewers
   * never see the stream end. Edges drop anything of this one still in flight.
   */
  abandon(): void {
    this.ended = true;
  }

  /** The publisher left: marks the end of the stream on the bus; resolves once stored (or failed). */
  end(): Promise<void> {
    if (this.ended || !this.mayPublish()) {
      this.ended = true;
      return Promise.resolve();
    }
    this.ended = true;
    return new Promise((resolve) => {
      const done = () => resolve();
      this.publisher.send(this.subjects.end, encodeEnd({ counter: this.counter++, token: this.token }, Date.now()), done, done, this.mayPublish);
    });
  }
}
