import {
  type NatsConnection,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from '../../server/core/bus/nats.ts';
import type { FeedSource } from '../../server/core/bus/regional-bus.ts';
import type { Logger } from '../../server/core/log.ts';

export interface StreamFeedOptions {
  /**
   * Where the rendition's frames are: the JetStream stream (its shard, or in another region's
   * stream a copy in this region) and its subjects. Asked at start and at each restart.
   */
  locate: () => Promise<FeedSource>;
  /** Messages one pull may bring (bounded: see field notes on stalled ordered consumers). */
  maxMessages: number;
  watchdogIntervalMs: number;
  log: Logger;
}

export interface FeedStats {
  received: number;
  restarts: number;
  lastSeq: number;
}

/**
 * JetStream requests of the feed time out quickly: while a NATS cluster elects a
 * new leader, a consumer creation hangs until its timeout, and the watchdog's next
 * attempt should not wait long behind it.
 */
const JS_TIMEOUT_MS = 2000;

/** How often (in watchdog ticks) the consumer's node is checked against its stream's leader. */
const PLACEMENT_CHECK_TICKS = 10;
/** Consumers made again, at most, to land on the stream leader's node (each lands on one of R replicas at random). */
const PLACEMENT_ATTEMPTS = 5;

/** Where a new consumer should start. */
export type StartPoint = { kind: 'sequence'; seq: number } | { kind: 'new' };

/**
 * One JetStream consumer for one stream on one edge, however many viewers
 * watch. It starts at the last keyframe (or at the next message when the stream
 * is not live), hands messages over in order, and a watchdog recreates it when
 * it has gone quiet while the bus holds newer messages for its subjects
 * (ordered consumers can stall for good after the server cuts a connection).
 */
export class StreamFeed {
  private jsm: JetStreamManager | undefined;
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastMessageAt = Date.now();
  private closed = false;
  private checking = false;
  private ticks = 0;
  readonly stats: FeedStats = { received: 0, restarts: 0, lastSeq: 0 };
  /** The last message delivered: its reply subject says how many are still pending, read at scrape time only. */
  private lastMessage: JsMsg | undefined;

  private source: FeedSource | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: StreamFeedOptions,
    private readonly onMessage: (data: Uint8Array, seq: number) => void,
    private readonly onRestart: (reason: string) => void = () => {},
  ) {}

  /** Starts consuming; returns where: the last keyframe, or new messages only (the stream is not live). */
  async start(): Promise<StartPoint> {
    this.jsm = await jetstreamManager(this.nc, { timeout: JS_TIMEOUT_MS });
    this.source = await this.options.locate();
    const start = await this.findStart();
    await this.consumeFrom(start);
    await this.placeOnLeader(start);
    this.watchdog = setInterval(() => void this.check(), this.options.watchdogIntervalMs);
    this.watchdog.unref();
    return start;
  }

  /** The last keyframe, unless the stream ended after it. */
  async findStart(): Promise<StartPoint> {
    const jsm = this.jsm!;
    const { jsStream, subjects } = this.source!;
    const [key, end] = await Promise.all([
      jsm.direct.getMessage(jsStream, { last_by_subj: subjects.keyframe }),
      jsm.direct.getMessage(jsStream, { last_by_subj: subjects.end }),
    ]);
    if (key && (!end || end.seq < key.seq)) return { kind: 'sequence', seq: key.seq };
    return { kind: 'new' };
  }

  private async consumeFrom(start: StartPoint): Promise<void> {
    const js = jetstream(this.nc, { timeout: JS_TIMEOUT_MS });
    const consumer = await js.consumers.get(this.source!.jsStream, {
      filter_subjects: this.source!.subjects.all,
      ...(start.kind === 'sequence' ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.seq } : { deliver_policy: DeliverPolicy.New }),
    });
    this.consumer = consumer;
    if (this.closed) return void this.release();
    this.lastMessageAt = Date.now();
    // Bounded by messages, not bytes. nats.js caps a byte-bounded pull at 100 messages
    // and refills it when 75 remain, asking only for the bytes it has not yet accounted
    // for; a pull ended by its message count leaves those bytes counted as pending, so
    // the refills shrink until the next keyframe does not fit (409), and the consumer
    // waits for missed heartbeats: pauses of 0.4-2 s, more often the more small messages
    // a rendition carries (Opus beside AAC made it visible). A count budget has no such
    // leak; 256 messages is a few seconds of one rendition, a GOP replay included.
    this.messages = await consumer.consume({
      max_messages: this.options.maxMessages,
      threshold_messages: Math.floor(this.options.maxMessages / 2),
      expires: 5_000,
      idle_heartbeat: 1_000,
      callback: (msg: JsMsg) => {
        this.lastMessageAt = Date.now();
        this.stats.received++;
        this.stats.lastSeq = msg.seq;
        this.lastMessage = msg;
        this.onMessage(msg.data, msg.seq);
      },
    });
  }

  /**
   * In a NATS cluster, moves the consumer to the node that leads its stream. nats-server places a
   * one-replica consumer on any of the stream's replicas at random, and one placed elsewhere
   * stops when that other node dies although the stream (its shard) is fine: measured, a node's
   * loss paused streams it did not lead for 6-9 s. On the leader's node, the consumer shares its
   * stream's fate only. Made again from the next message, so nothing is skipped or repeated.
   */
  private async placeOnLeader(start: StartPoint): Promise<void> {
    for (let attempt = 1; attempt <= PLACEMENT_ATTEMPTS && !this.closed && this.consumer; attempt++) {
      const [consumer, stream] = await Promise.all([this.consumer.info(true), this.jsm!.streams.info(this.source!.jsStream)]);
      const leader = stream.cluster?.leader;
      const at = consumer.cluster?.leader;
      if (!leader || !at || at === leader || (stream.cluster?.replicas ?? []).length === 0) return;
      if (attempt === PLACEMENT_ATTEMPTS) {
        this.options.log.debug({ leader, at }, 'stream consumer left off its stream leader');
        return;
      }
      await this.release();
      await this.consumeFrom(this.stats.lastSeq > 0 ? { kind: 'sequence', seq: this.stats.lastSeq + 1 } : start);
    }
  }

  /** Messages stored for this consumer and not yet delivered (the consumer lag), as of the last delivery. */
  get pending(): number {
    return this.lastMessage?.info.pending ?? 0;
  }

  /**
   * The watchdog: quiet, but the bus holds a message for us we have not had?
   * A later sequence means we stalled: resume right after the last one delivered.
   * An earlier one means the stream was recreated (a nats-server restart loses a
   * memory stream and its sequences start again): start over at its last keyframe.
   */
  private async check(): Promise<void> {
    if (this.closed || this.checking) return;
    if (++this.ticks % PLACEMENT_CHECK_TICKS === 0 && Date.now() - this.lastMessageAt < this.options.watchdogIntervalMs) {
      // Flowing: is it still where its stream's leader is (leaders move: elections, the origins' balancing)?
      this.checking = true;
      await this.placeOnLeader({ kind: 'new' })
        .catch((err: Error) => this.options.log.debug({ err: err.message }, 'placement check failed (NATS unreachable?)'))
        .finally(() => (this.checking = false));
      return;
    }
    if (Date.now() - this.lastMessageAt < this.options.watchdogIntervalMs) return;
    this.checking = true;
    try {
      // Quiet: is the stream somewhere else now (published in another region, or this region's copy of it gone)?
      const now = await this.options.locate();
      if (now.jsStream !== this.source!.jsStream || now.subjects.all !== this.source!.subjects.all) {
        this.options.log.warn({ from: this.source!.jsStream, to: now.jsStream }, 'the stream is read from elsewhere now; restarting the consumer there');
        this.source = now;
        this.stats.lastSeq = 0;
        await this.restart(await this.findStart(), 'moved');
        return;
      }
      const last = await this.jsm!.direct.getMessage(this.source!.jsStream, { last_by_subj: this.source!.subjects.all });
      if (!last || last.seq === this.stats.lastSeq || this.closed) return;
      const recreated = last.seq < this.stats.lastSeq;
      this.options.log.warn(
        { lastDelivered: this.stats.lastSeq, lastOnBus: last.seq },
        recreated ? 'frame stream was recreated; restarting the consumer' : 'stream consumer stalled; recreating it',
      );
      const start: StartPoint = recreated || this.stats.lastSeq === 0 ? await this.findStart() : { kind: 'sequence', seq: this.stats.lastSeq + 1 };
      if (recreated) this.stats.lastSeq = 0;
      await this.restart(start, recreated ? 'stream recreated' : 'stalled');
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'watchdog check failed (NATS unreachable?)');
    } finally {
      this.checking = false;
    }
  }

  private async restart(start: StartPoint, reason: string): Promise<void> {
    this.stats.restarts++;
    await this.release();
    this.onRestart(reason);
    await this.consumeFrom(start);
    await this.placeOnLeader(start);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    await this.release();
  }

  /**
   * Stops the consumer and deletes it on the server. An ordered consumer left
   * behind would stay on nats-server for its 5-minute inactivity threshold: one
   * per rendition an edge stopped watching.
   */
  private async release(): Promise<void> {
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    await messages?.close().catch(() => {});
    await consumer?.delete().catch(() => {});
  }
}
