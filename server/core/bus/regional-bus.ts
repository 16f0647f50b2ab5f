import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DiscardPolicy, jetstreamManager, type JetStreamManager, type NatsConnection, nanos, RetentionPolicy, StorageType } from './nats.ts';
import { busLayout, type BusLayout, ownBusLayout } from './shards.ts';
import { SubjectKind, type StreamSubjects } from './subjects.ts';

/** Where one rendition's frames are read from: the JetStream stream, and the rendition's subjects in it. */
export interface FeedSource {
  jsStream: string;
  subjects: StreamSubjects;
}

/** How long a stream's region is remembered (a stream that moves region, a publisher reconnecting elsewhere, is found again after this). */
const LOCATE_TTL_MS = 2000;
/** A new copy starts this far back in the origin region's frames: enough for the last keyframe of each rendition. */
const COPY_BACKLOG_S = 10;

/**
 * The bus of a NATS supercluster: one per region (`cluster.regions`), each region's frames in its
 * own shards, in its own NATS cluster (placement by cluster name). A stream is published in its
 * origin's region; an edge in another region reads it from a copy in its own region, a JetStream
 * stream sourcing that stream's subjects alone from the origin's shard across the gateway. The
 * copy is made when an edge there first needs the stream and removed when no edge reads it any
 * more, so a stream crosses a long link once per region watching it, and only then. A cut link
 * pauses the copy, and it resumes where it stopped when the link is back (the source's position
 * is the copy's own).
 *
 * Without regions it is the single bus: every stream in this node's own shards, no copies.
 */
export class RegionalBus {
  readonly own: BusLayout;
  private readonly layouts: BusLayout[];
  private readonly located = new Map<string, { at: number; layout: Promise<BusLayout> }>();
  private jsm: JetStreamManager | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Pick<RelayConfig, 'bus' | 'cluster'>,
    private readonly log: Logger,
  ) {
    this.own = ownBusLayout(config);
    const others = config.cluster.regions.filter((r) => r !== this.own.region).map((r) => busLayout(config.bus, r));
    this.layouts = [this.own, ...others];
  }

  private async manager(): Promise<JetStreamManager> {
    return (this.jsm ??= await jetstreamManager(this.nc, { timeout: 5000 }));
  }

  /** The layout of the region publishing `stream` now (its shard holds a keyframe with no end after it); the own region's when none or no regions. */
  locate(stream: string): Promise<BusLayout> {
    if (this.layouts.length === 1) return Promise.resolve(this.own);
    const hit = this.located.get(stream);
    if (hit && Date.now() - hit.at < LOCATE_TTL_MS) return hit.layout;
    const layout = this.find(stream);
    this.located.set(stream, { at: Date.now(), layout });
    layout.catch(() => this.located.delete(stream));
    if (this.located.size > 10_000) this.located.delete(this.located.keys().next().value!);
    return layout;
  }

  private async find(stream: string): Promise<BusLayout> {
    const jsm = await this.manager();
    const notFound = (err: unknown) => /not found/i.test((err as Error).message);
    const looked = await Promise.all(
      this.layouts.map(async (layout): Promise<{ layout: BusLayout; time: number } | 'absent' | 'unknown'> => {
        try {
          const { jsStream, prefix } = layout.shardOf(stream);
          const info = await jsm.streams.info(jsStream, { subjects_filter: `${prefix}.${stream}.*.${SubjectKind.KEYFRAME}` });
          const first = Object.keys(info.state.subjects ?? {})[0];
          if (!first) return 'absent';
          const [key, end] = await Promise.all([
            jsm.direct.getMessage(jsStream, { last_by_subj: first }),
            jsm.direct.getMessage(jsStream, { last_by_subj: first.replace(/\.k$/, `.${SubjectKind.END}`) }).catch((err: unknown) => {
              if (notFound(err)) return null;
              throw err;
            }),
          ]);
          return key && !(end && end.seq > key.seq) ? { layout, time: key.time.getTime() } : 'absent';
        } catch (err) {
          return notFound(err) ? 'absent' : 'unknown';
        }
      }),
    );
    // Live in two regions (a publisher moved): the latest keyframe wins.
    const live = looked.filter((x) => typeof x === 'object').sort((a, b) => b.time - a.time)[0];
    if (live) return live.layout;
    // A region out of reach (its link cut) may be the one publishing it: no answer rather than a wrong one, so that a
    // reader keeps its copy, which resumes where it stopped when the link is back.
    if (looked.includes('unknown')) throw new RelayError('BUS_UNAVAILABLE', `cannot tell which region publishes ${stream}: a region is out of reach`);
    return this.own;
  }

  /** Where an edge of this region reads `rendition` of `stream`: its own shard, or this region's copy of it (made now if missing). */
  async source(stream: string, rendition: string): Promise<FeedSource> {
    const layout = await this.locate(stream);
    const subjects = layout.subjects(stream, rendition);
    if (layout === this.own) return { jsStream: layout.shardOf(stream).jsStream, subjects };
    return { jsStream: await this.ensureCopy(layout, stream), subjects };
  }

  private async ensureCopy(origin: BusLayout, stream: string): Promise<string> {
    const copy = origin.copyOf(stream, this.own.region);
    const jsm = await this.manager();
    const exists = await jsm.streams.info(copy.jsStream).then(
      () => true,
      (err: Error) => {
        if (/stream not found/i.test(err.message)) return false;
        throw err;
      },
    );
    if (exists) return copy.jsStream;
    const { bus } = this.config;
    try {
      await jsm.streams.add({
        name: copy.jsStream,
        // A cache of the origin's frames: in memory, one replica; lost with its node, it is made again from the origin.
        storage: StorageType.Memory,
        num_replicas: 1,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_age: nanos(bus.maxAgeSeconds * 1000),
        max_bytes: Math.ceil(bus.maxBytes / origin.shards.length),
        allow_direct: true,
        placement: { cluster: this.own.region, tags: [] },
        sources: [
          {
            name: copy.from.jsStream,
            filter_subject: copy.filter,
            opt_start_time: new Date(Date.now() - Math.min(COPY_BACKLOG_S, bus.maxAgeSeconds) * 1000).toISOString(),
          },
        ],
      });
      this.log.info({ stream, from: origin.region, copy: copy.jsStream }, 'copying a stream from its region into this one');
    } catch (err) {
      // Another edge of this region made it first.
      if (!/already in use/i.test((err as Error).message)) throw err;
    }
    return copy.jsStream;
  }

  /** Copies seen with no consumer, and since when (they are removed once idle long enough). */
  private idleCopies = new Map<string, number>();

  /**
   * Removes this region's copies that no consumer has read for `minIdleMs`, seen at each sweep in
   * between: those whose release was missed (NATS away when the last edge let go, an edge killed).
   * A copy being made, or whose consumer an edge is making again, is idle for well under a second.
   * Returns how many went.
   */
  async sweepCopies(minIdleMs: number, now = Date.now()): Promise<number> {
    if (this.layouts.length === 1) return 0;
    const jsm = await this.manager();
    const suffix = `_IN_${this.own.region}`;
    const prefix = `${this.config.bus.streamName}_`;
    const idle = new Map<string, number>();
    let removed = 0;
    for await (const info of jsm.streams.list()) {
      const name = info.config.name;
      if (!name.endsWith(suffix) || !name.startsWith(prefix) || info.state.consumer_count > 0) continue;
      const since = this.idleCopies.get(name) ?? now;
      if (now - since < minIdleMs) {
        idle.set(name, since);
        continue;
      }
      await jsm.streams.delete(name).catch(() => {});
      removed++;
      this.log.info({ copy: name, idleMs: now - since }, 'a copy no consumer reads removed (its release was missed)');
    }
    this.idleCopies = idle;
    return removed;
  }

  /** Removes this region's copies of `stream` that no consumer reads any more (an edge calls it a while after it stopped watching). */
  async releaseCopies(stream: string): Promise<void> {
    if (this.layouts.length === 1) return;
    const jsm = await this.manager();
    for (const origin of this.layouts.slice(1)) {
      const { jsStream } = origin.copyOf(stream, this.own.region);
      const info = await jsm.streams.info(jsStream).catch(() => undefined);
      if (!info || info.state.consumer_count > 0) continue;
      await jsm.streams.delete(jsStream).catch(() => {});
      this.log.info({ stream, copy: jsStream }, 'stream no longer watched in this region: its copy removed');
    }
  }
}
