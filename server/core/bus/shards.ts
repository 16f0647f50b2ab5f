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

  constructor(bus: Pick<RelayConfig['bus'], 'streamName' | 'subjectPrefix' | 'shards'>) {
    const n = bus.shards;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`bus.shards must be a whole number from 1: ${n}`);
    this.shards = Array.from({ length: n }, (_, index) => {
      const jsStream = n === 1 ? bus.streamName : `${bus.streamName}_${index}`;
      const prefix = n === 1 ? bus.subjectPrefix : `${bus.subjectPrefix}_s${index}`;
      return { index, jsStream, prefix, wildcard: `${prefix}.>` };
    });
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

const layouts = new WeakMap<object, BusLayout>();

/** The layout of a config's `bus`, made once per config object. */
export function busLayout(bus: RelayConfig['bus']): BusLayout {
  let layout = layouts.get(bus);
  if (!layout) layouts.set(bus, (layout = new BusLayout(bus)));
  return layout;
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
