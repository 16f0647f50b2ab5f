/**
 * A small seeded fuzzer: mutations of valid inputs (bit flips, overwritten bytes,
 * boundary integers, truncation, insertion, duplication, splices) and plain random
 * bytes. Seeded so that a failure names the seed that reproduces it.
 *
 * RELAY_FUZZ_SCALE multiplies every iteration count (scripts/fuzz runs long);
 * RELAY_FUZZ_SEED fixes the seed (default: a new one per run, printed on failure).
 */
export const FUZZ_SCALE = Math.max(1, Number(process.env.RELAY_FUZZ_SCALE ?? 1) || 1);
export const FUZZ_SEED = Number(process.env.RELAY_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

export function iterations(base: number): number {
  return Math.round(base * FUZZ_SCALE);
}

/** mulberry32: small, fast, good enough to pick mutations. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

/** One to a few mutations of `input` (never changes `input` itself). */
export function mutate(rng: Rng, input: Buffer, donors: readonly Buffer[] = []): Buffer {
  let out = Buffer.from(input);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = out.length ? rng.int(out.length) : 0;
    switch (rng.int(8)) {
      case 0: // flip a bit
        if (out.length) out[at] = out[at]! ^ (1 << rng.int(8));
        break;
      case 1: // a random byte
        if (out.length) out[at] = rng.int(256);
        break;
      case 2: {
        // a boundary integer, 1, 2 or 4 bytes wide
        const width = rng.pick([1, 2, 4]);
        if (at + width <= out.length) out.writeUIntBE(rng.pick(INTERESTING) % 2 ** (8 * width), at, width);
        break;
      }
      case 3: // truncate
        out = out.subarray(0, at);
        break;
      case 4: // insert random bytes
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(64)), out.subarray(at)]);
        break;
      case 5: {
        // duplicate a run
        const len = 1 + rng.int(Math.min(256, Math.max(1, out.length - at)));
        out = Buffer.concat([out.subarray(0, at + len), out.subarray(at, at + len), out.subarray(at + len)]);
        break;
      }
      case 6: {
        // splice in part of another valid input
        if (!donors.length) break;
        const donor = rng.pick(donors);
        const from = rng.int(Math.max(1, donor.length));
        out = Buffer.concat([out.subarray(0, at), donor.subarray(from, from + 1 + rng.int(256))]);
        break;
      }
      default: // delete a run
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.int(32))]);
    }
  }
  return out;
}

/** A mutated text (for SDP, URLs, JSON): byte mutations, kept as latin1 so every byte survives. */
export function mutateText(rng: Rng, input: string, donors: readonly string[] = []): string {
  return mutate(
    rng,
    Buffer.from(input, 'latin1'),
    donors.map((d) => Buffer.from(d, 'latin1')),
  ).toString('latin1');
}
