import { createHash, timingSafeEqual } from 'node:crypto';
import type { StreamEntry } from '../config/schema.ts';

const digest = (key: string) => createHash('sha256').update(key).digest();

/**
 * Maps secret publish keys to public stream names. Keys are held as digests and
 * compared in constant time; nothing here ever hands a key back out.
 */
export class StreamKeys {
  private readonly entries: { name: string; digest: Buffer }[];

  constructor(streams: readonly StreamEntry[]) {
    this.entries = streams.map((s) => ({ name: s.name, digest: digest(s.key) }));
  }

  /** The stream a key publishes to, or undefined for a wrong key. */
  streamFor(key: string): string | undefined {
    const d = digest(key);
    let found: string | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) found = e.name;
    return found;
  }

  has(name: string): boolean {
    return this.entries.some((e) => e.name === name);
  }

  get names(): string[] {
    return this.entries.map((e) => e.name);
  }
}
