import { PublicationFilter, type Filtered } from '../server/core/bus/publication-filter.ts';
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
import { StreamSubjects } from '../server/core/bus/subjects.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import type { Logger } from '../server/core/log.ts';
import type { Frame } from '../server/core/media/frame.ts';
import type { FrameStamp } from '../server/core/bus/frame-codec.ts';
import { RecordingTrack, type RecordedSegment, type ResumePoint, type TrackOutput } from './recording-track.ts';

/** A bus position: the message (its sequence, and what acknowledges it with everything before it). */
export type Position = JsMsg;

/** What a rendition recorder asks of its stream's recorder: the recording a publication goes into, and storage. */
export interface RenditionSink {
  /** The recording of publication `token` (made on its first frame), and where this rendition stands in it. */
  open(token: number, first: Frame): Promise<RenditionFiles>;
}

/** One rendition's files in one recording. */
export interface RenditionFiles {
  /** Where to go on from, when this rendition was recorded into it before (a restarted recorder). */
  readonly resumed: { nextIndex: number; initId: number; resume: ResumePoint | undefined } | undefined;
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
 * first message not stored; the publication filter and the segmenter resume where the last stored segment left off,
 * so the next segment is the one that would have been written.
 */
export class RenditionRecorder {
  private readonly filter: PublicationFilter;
  private track: RecordingTrack<Position> | undefined;
  private files: RenditionFiles | undefined;
  private token: number | undefined;
  private messages: ConsumerMessages | undefined;
  /** Stored in order, one at a time: the tail of the chain of writes. */
  private writing: Promise<void> = Promise.resolve();
  private prev: Position | undefined;
  /** The position before the first part of a frame split over several messages. */
  private partBefore: Position | undefined;
  /** Messages are handled one at a time, in order, though opening a recording is asynchronous. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Frames went missing before a recording began (a recorder resumed past the bus's retention). */
  private gapBeforeTrack = false;
  lastMessageAt = Date.now();
  /** The publication ended and everything of it is stored. */
  idle = true;
  segments = 0;
  gaps = 0;
  failed: Error | undefined;

  constructor(
    private readonly nc: NatsConnection,
    readonly stream: string,
    readonly rendition: string,
    private readonly config: RelayConfig,
    private readonly sink: RenditionSink,
    private readonly log: Logger,
  ) {
    this.filter = new PublicationFilter(config.cluster.leaseTtlMs + 2000);
  }

  /**
   * Starts consuming: with the durable consumer as it stands (a recorder resuming), or a new one at `startSeq` (the
   * publication's first keyframe the recorder knows of).
   */
  async start(startSeq: number | undefined): Promise<void> {
    const { bus } = this.config;
    const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    const name = durableName(this.stream, this.rendition);
    const exists = await jsm.consumers.info(bus.streamName, name).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const subjects = new StreamSubjects(bus.subjectPrefix, this.stream, this.rendition);
      await jsm.consumers.add(bus.streamName, {
        durable_name: name,
        filter_subject: subjects.all,
        ack_policy: AckPolicy.All,
        // A segment is acknowledged when stored; until then its messages are out. Twice the longest GOP here, and room.
        max_ack_pending: 50_000,
        ack_wait: nanos(Math.max(60_000, this.config.recording.segmentSeconds * 10_000)),
        ...(startSeq !== undefined ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq } : { deliver_policy: DeliverPolicy.New }),
      });
      this.log.info({ consumer: name, startSeq }, 'recording consumer created');
    } else {
      this.log.info({ consumer: name }, 'recording consumer resumed');
    }
    const consumer = await jetstream(this.nc, { timeout: 5000 }).consumers.get(bus.streamName, name);
    if (this.closed) return;
    this.messages = await consumer.consume({
      max_messages: 512,
      threshold_messages: 256,
      expires: 5_000,
      callback: (msg: JsMsg) => {
        this.lastMessageAt = Date.now();
        this.queue = this.queue.then(() => this.message(msg)).catch((err: Error) => this.fail(err));
      },
    });
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.log.error({ code: 'RECORDING_WRITE_FAILED', err: err.message }, 'recording stopped: its storage failed');
    void this.messages?.close().catch(() => {});
  }

  private async message(msg: JsMsg): Promise<void> {
    if (this.closed || this.failed) return;
    const before = this.partBefore ?? this.prev;
    const out: Filtered = this.filter.push(msg.data, performance.now());
    if (out.kind === 'skip' && out.reason === 'partial') {
      this.partBefore ??= this.prev;
      this.prev = msg;
      return;
    }
    this.partBefore = undefined;
    this.prev = msg;
    if (out.events?.gap) {
      this.gaps++;
      this.log.warn({ expected: out.events.gap.expected, got: out.events.gap.got }, 'frames missing on the bus: a discontinuity in the recording');
      if (this.track) this.emit(this.track.gap());
      else this.gapBeforeTrack = true;
    }
    if (out.events?.newPublication && this.track && this.token !== out.events.newPublication.token) {
      // Another publication took over with no end marker from this one: its recording ends here.
      await this.finish(undefined);
    }
    if (out.kind === 'end') {
      if (this.track) await this.finish(msg);
      else msg.ack();
      return;
    }
    if (out.kind !== 'frame') return;
    if (!this.track) await this.begin(out.stamp, out.frame);
    this.emit(this.track!.push(out.frame, out.stamp, before, msg));
  }

  private async begin(stamp: FrameStamp, first: Frame): Promise<void> {
    this.idle = false;
    this.token = stamp.token;
    this.files = await this.sink.open(stamp.token, first);
    const resumed = this.files.resumed;
    this.track = new RecordingTrack(this.config.recording.segmentSeconds, resumed?.nextIndex ?? 0, resumed?.initId ?? 0);
    if (resumed) this.log.info({ token: stamp.token, nextIndex: resumed.nextIndex }, 'recording resumed');
    if (this.gapBeforeTrack && resumed) this.track.gap(); // nothing open: the next segment follows a discontinuity
    this.gapBeforeTrack = false;
  }

  /**
   * Resumes the filter where the stored segments end, before the first message: called by the stream recorder with
   * what it read from storage. Without it, recording starts at the next random access point.
   */
  resumeAt(point: ResumePoint): void {
    this.filter.resume(point.token, point.nextCounter, performance.now());
  }

  private emit(outputs: TrackOutput<Position>[]): void {
    const files = this.files!;
    for (const o of outputs) {
      this.writing = this.writing
        .then(async () => {
          if (this.failed) return;
          if (o.kind === 'init') return files.init(o.id, o.data);
          await files.segment(o.segment);
          this.segments++;
          o.segment.ack?.ack();
        })
        .catch((err: Error) => this.fail(err));
    }
  }

  /** The publication is over: the last segment, then the VOD playlist, then the end marker's acknowledgement. */
  private async finish(endMsg: JsMsg | undefined): Promise<void> {
    const track = this.track!;
    const files = this.files!;
    this.emit(track.end(undefined)); // the end marker is acknowledged once the playlist says VOD
    this.track = undefined;
    this.files = undefined;
    this.token = undefined;
    this.writing = this.writing
      .then(async () => {
        if (this.failed) return;
        await files.end();
        endMsg?.ack();
        this.idle = true;
      })
      .catch((err: Error) => this.fail(err));
    await this.writing;
  }

  /** Stops consuming, after what is being stored is stored (the consumer stays: a recorder may resume it). */
  async close(): Promise<void> {
    this.closed = true;
    await this.messages?.close().catch(() => {});
    await this.writing.catch(() => {});
  }

  /** The consumer is not needed any more (the stream is over and recorded): removed from the server. */
  async remove(): Promise<void> {
    await this.close();
    const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    await jsm.consumers.delete(this.config.bus.streamName, durableName(this.stream, this.rendition)).catch(() => {});
  }
}
