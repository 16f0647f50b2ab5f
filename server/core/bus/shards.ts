import type { RelayConfig } from '../config/schema.ts';
import { assertStreamName } from '../media/stream-name.ts';
import { StreamSubjects } from './subjects.ts';

/** One JetStream stream of frames and the subjects it holds: every rendition of the live streams hashed to it. */
export interface BusShard {
  readonly index: number;
  /** The JetStream stream's name. */
  readonly jsStream: string;
  /** First subject tokens of its frames: `<prefix>.<stream>.<rendition>.<kind>`. */
  readonly prefix: string;
  /** The wildcard the JetStream stream binds. */
  readonly wildcard: string;
}

/**
 * Where each live stream's frames go on the bus: `bus.shards` JetStream streams, each led by
 * whichever NATS node its Raft group elects, so that the leaders, and the CPU of storing frames,
 * spread over a NATS cluster (one stream has one leader: a single frame stream puts every frame of
 * every stream on one node).
 *
 * One shard is the layout of a single frame stream: `bus.streamName` binding `<prefix>.>`.
 * With N > 1, shard i is `<streamName>_<i>` binding `<prefix>_s<i>.>`: subjects that overlap
 * neither each other nor the single stream's, so both can exist side by side while a deployment
 * switches (the single stream empties by its max age). A stream's shard is its name's jump
 * consistent hash (Lamping and Veach): the same on every node with the same N, evenly spread, and
 * when N grows only the streams that move to the new shards move.
 *
 * Pure: names in, names out.
 */
export class BusLayout {
  readonly shards: readonly BusShard[];
  private readonly memo = new Map<string, BusShard>();

  /**
   * `region`: the bus of one region of several (`cluster.regions`): its names carry the region
   * (`<streamName>_<region>[_<i>]`, `<prefix>_<region>[_s<i>]`), so that the regions' streams, in
   * one JetStream supercluster, never bind the same subjects. Empty: the one bus of a single region.
   */
  constructor(
    bus: Pick<RelayConfig['bus'], 'streamName' | 'subjectPrefix' | 'shards'>,
    readonly region = '',
  ) {
    const n = bus.shards;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`bus.shards must be a whole number from 1: ${n}`);
    const name = region ? `${bus.streamName}_${region}` : bus.streamName;
    const base = region ? `${bus.subjectPrefix}_${region}` : bus.subjectPrefix;
    this.shards = Array.from({ length: n }, (_, index) => {
      const jsStream = n === 1 ? name : `${name}_${index}`;
      const prefix = n === 1 ? base : `${base}_s${index}`;
      return { index, jsStream, prefix, wildcard: `${prefix}.>` };
    });
  }

  /**
   * The copy of `stream` that region `to` keeps while its viewers watch it (this layout being the
   * stream's origin region's): a JetStream stream in `to` sourcing the stream's subjects alone
   * from its shard, so that the frames cross the link between the regions once, however many
   * edges there consume them.
   */
  copyOf(stream: string, to: string): { jsStream: string; from: BusShard; filter: string } {
    const from = this.shardOf(stream);
    return { jsStream: `${from.jsStream}_${stream}_IN_${to}`, from, filter: `${from.prefix}.${stream}.>` };
  }

  /** The shard that holds `stream`'s frames. */
  shardOf(stream: string): BusShard {
    let shard = this.memo.get(stream);
    if (shard) return shard;
    assertStreamName(stream);
    shard = this.shards[jumpHash(fnv1a64(stream), this.shards.length)]!;
    if (this.memo.size >= 10_000) this.memo.clear();
    this.memo.set(stream, shard);
    return shard;
  }

  /** The subjects of one rendition of `stream`, in its shard. */
  subjects(stream: string, rendition?: string): StreamSubjects {
    return new StreamSubjects(this.shardOf(stream).prefix, stream, rendition);
  }

  /** The shard a frame subject belongs to (by its prefix), or undefined for a subject outside the frame streams. */
  shardOfSubject(subject: string): BusShard | undefined {
    return this.shards.find((s) => subject.startsWith(s.prefix) && subject.charCodeAt(s.prefix.length) === 0x2e /* . */);
  }
}

const layouts = new WeakMap<object, Map<string, BusLayout>>();

/** The layout of a config's `bus` (in `region`, for a bus of several regions), made once per config object. */
export function busLayout(bus: RelayConfig['bus'], region = ''): BusLayout {
  let byRegion = layouts.get(bus);
  if (!byRegion) layouts.set(bus, (byRegion = new Map<string, BusLayout>()));
  let layout = byRegion.get(region);
  if (!layout) byRegion.set(region, (layout = new BusLayout(bus, region)));
  return layout;
}

/** Where this node's bus is: its own region's when the NATS supercluster has several (`cluster.regions`), else the single bus. */
export function ownBusLayout(config: Pick<RelayConfig, 'bus' | 'cluster'>): BusLayout {
  return busLayout(config.bus, config.cluster.regions.length > 0 ? config.cluster.region : '');
}

const MASK64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bits, over the name's UTF-8 bytes. */
export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & MASK64;
  }
  return h;
}

/** Jump consistent hash (Lamping and Veach, 2014): a bucket in [0, buckets) for a 64-bit key. */
export function jumpHash(key: bigint, buckets: number): number {
  let b = -1;
  let j = 0;
  let k = key;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & MASK64;
    j = Math.floor(((b + 1) * 2 ** 31) / (Number(k >> 33n) + 1));
  }
  return b;
}
