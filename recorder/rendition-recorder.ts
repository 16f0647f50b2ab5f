import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  nanos,
  type ConsumerMessages,
  type JsMsg,
  type NatsConnection,
} from '../server/core/bus/nats.ts';
import { type BusShard, ownBusLayout } from '../server/core/bus/shards.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import type { Logger } from '../server/core/log.ts';
import type { Frame } from '../server/core/media/frame.ts';
import type { RecordedSegment, ResumePoint } from './recording-track.ts';
import { RenditionTape, type TapeEvent } from './rendition-tape.ts';

/** A bus position: the message (its sequence, and what acknowledges it with everything before it). */
export type Position = JsMsg;

/** What a rendition recorder asks of its stream's recorder: the recording a publication goes into, and storage. */
export interface RenditionSink {
  /** The recording of publication `token` (made on its first frame), and where this rendition stands in it. */
  open(token: number, first: Frame): Promise<RenditionFiles>;
}

/** One rendition's files in one recording. Numbers (segments, inits) are the tape's, from 0 and 1: the files add what was stored before. */
export interface RenditionFiles {
  init(id: number, data: Buffer): Promise<void>;
  segment(segment: RecordedSegment<Position>): Promise<void>;
  /** The publication ended (or was taken over): the playlist becomes VOD. */
  end(): Promise<void>;
}

/** The durable consumer of a rendition: one name per stream and rendition, whichever recorder holds it. */
export const durableName = (stream: string, rendition: string) => `rec~${stream}~${rendition}`;

/** The stream and rendition of a recorder's durable consumer, or undefined for another consumer. */
export function parseDurableName(name: string): { stream: string; rendition: string } | undefined {
  const m = /^rec~([A-Za-z0-9_-]{1,64})~([a-z0-9_-]{1,32})$/.exec(name);
  return m ? { stream: m[1]!, rendition: m[2]! } : undefined;
}

/**
 * Records one rendition of one stream from the bus, exactly: a durable JetStream consumer that acknowledges a
 * message only once the segment holding it is stored (ack policy "all": one acknowledgement lets go of everything
 * before). A recorder killed with -9 comes back (or another takes the lease) and the consumer delivers again from the
 * first message not stored; the tape (filter and segmenter) resumes where the last stored segment left off, so the
 * next segment is the one that would have been written.
 */
export class RenditionRecorder {
  private readonly tape: RenditionTape<Position>;
  private files: RenditionFiles | undefined;
  private messages: ConsumerMessages | undefined;
  /** Stored in order, one step at a time: the tail of the chain. */
  private work: Promise<void> = Promise.resolve();
  private closed = false;
  lastMessageAt = Date.now();
  /** Nothing is being recorded (no publication begun, or its end stored). */
  idle = true;
  segments = 0;
  failed: Error | undefined;
  /** The frame stream (the bus's shard) holding this stream's frames. */
  private readonly shard: BusShard;

  constructor(
    private readonly nc: NatsConnection,
    readonly stream: string,
    readonly rendition: string,
    private readonly config: RelayConfig,
    private readonly sink: RenditionSink,
    private readonly log: Logger,
  ) {
    this.tape = new RenditionTape(config.recording.segmentSeconds, config.cluster.leaseTtlMs + 2000);
    this.shard = ownBusLayout(config).shardOf(stream);
  }

  get gaps(): number {
    return this.tape.gaps;
  }

  /** Resumes where stored segments end, before the first message (read from storage by the stream's recorder). */
  resumeAt(point: ResumePoint): void {
    this.log.info({ token: point.token, nextCounter: point.nextCounter }, 'resuming the recording where stored segments end');
    this.tape.resumeAt(point, performance.now());
  }

  /** Whether this rendition's durable consumer exists: a recorder left it (a crash, a restart, a lost lease). */
  async exists(): Promise<boolean> {
    const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    return jsm.consumers.info(this.shard.jsStream, durableName(this.stream, this.rendition)).then(
      () => true,
      (err: Error) => {
        if (/consumer not found/i.test(err.message)) return false;
        throw err;
      },
    );
  }

  /**
   * Starts consuming: with the durable consumer as it stands (a recorder resuming), or a new one at `startSeq` (the
   * publication's first keyframe the recorder knows of).
   */
  async start(startSeq: number | undefined): Promise<void> {
    const { jsStream } = this.shard;
    const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    const name = durableName(this.stream, this.rendition);
    let resumeSeq: number | undefined;
    if (await this.exists()) {
      // The consumer goes on from the first message not acknowledged. JetStream would send what the last recorder
      // had pulled but not acknowledged only after ack_wait, and newer messages first: so the consumer is made again
      // at that sequence (the lease says no other recorder uses it).
      const info = await jsm.consumers.info(jsStream, name);
      resumeSeq = info.ack_floor.stream_seq > 0 ? info.ack_floor.stream_seq + 1 : (info.config.opt_start_seq ?? 1);
      await jsm.consumers.delete(jsStream, name);
    }
    {
      const subjects = ownBusLayout(this.config).subjects(this.stream, this.rendition);
      const from = resumeSeq ?? startSeq;
      await jsm.consumers.add(jsStream, {
        durable_name: name,
        filter_subject: subjects.all,
        ack_policy: AckPolicy.All,
        // A segment is acknowledged when stored; until then its messages are out (a few hundred a second).
        max_ack_pending: 50_000,
        ack_wait: nanos(Math.max(60_000, this.config.recording.segmentSeconds * 10_000)),
        ...(from !== undefined ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from } : { deliver_policy: DeliverPolicy.New }),
      });
      if (resumeSeq !== undefined) this.log.info({ consumer: name, from: resumeSeq }, 'recording consumer resumed after its last acknowledgement');
      else this.log.info({ consumer: name, from: startSeq }, 'recording consumer created');
    }
    const consumer = await jetstream(this.nc, { timeout: 5000 }).consumers.get(jsStream, name);
    if (this.closed) return;
    this.messages = await consumer.consume({
      max_messages: 512,
      threshold_messages: 256,
      expires: 5_000,
      callback: (msg: JsMsg) => {
        this.lastMessageAt = Date.now();
        if (this.closed || this.failed) return;
        for (const event of this.tape.push(msg.data, msg, performance.now())) this.then(() => this.store(event));
      },
    });
  }

  private then(step: () => Promise<void>): void {
    this.work = this.work
      .then(() => (this.failed ? undefined : step()))
      .catch((err: Error) => {
        if (this.failed) return;
        this.failed = err;
        this.log.error({ code: 'RECORDING_WRITE_FAILED', err: err.message }, 'recording stopped: its storage failed');
        void this.messages?.close().catch(() => {});
      });
  }

  private async store(event: TapeEvent<Position>): Promise<void> {
    switch (event.kind) {
      case 'gap':
        this.log.warn({ expected: event.expected, got: event.got }, 'frames missing on the bus: a discontinuity in the recording');
        return;
      case 'begin':
        this.idle = false;
        this.files = await this.sink.open(event.token, event.first);
        return;
      case 'init':
        return this.files!.init(event.id, event.data);
      case 'segment':
        await this.files!.segment(event.segment);
        this.segments++;
        event.segment.ack?.ack();
        return;
      case 'end':
        await this.files?.end();
        this.files = undefined;
        event.ack?.ack();
        this.idle = !this.tape.recording;
        return;
    }
  }

  /** Stops recording now (an operator asked): no more messages; what was taken in is stored, and the playlist ends. */
  async finishNow(): Promise<void> {
    this.closed = true;
    await this.messages?.close().catch(() => {});
    for (const event of this.tape.finish()) this.then(() => this.store(event));
    await this.work;
  }

  /** Stops consuming, after what is being stored is stored (the consumer stays: a recorder may resume it). */
  async close(): Promise<void> {
    this.closed = true;
    await this.messages?.close().catch(() => {});
    await this.work;
  }

  /** The consumer is not needed any more (the stream is over and recorded): removed from the server. */
  async remove(): Promise<void> {
    await this.close();
    const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    await jsm.consumers.delete(this.shard.jsStream, durableName(this.stream, this.rendition)).catch(() => {});
  }
}
