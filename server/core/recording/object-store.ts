import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Objm, StorageType, type NatsConnection, type ObjectStore } from '../bus/nats.ts';
import { RelayError } from '../errors.ts';
import type { RecordingStore } from './store.ts';

/** How often a stalled read looks whether its object is still there (ms), and how long it waits for data at most. */
export interface ReadStallLimits {
  checkMs: number;
  limitMs: number;
}
const STALL_LIMITS: ReadStallLimits = { checkMs: 1000, limitMs: 30_000 };

/**
 * A pending read's result, or undefined when it did not come within `ms`. The caller waits on the same pending read
 * again: a second `reader.read()` would be answered after it, and the first chunk lost.
 */
async function within<T>(pending: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([pending, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Recordings in a NATS Object Store bucket: replicated across the NATS cluster (`replicas`), so that any node (an
 * edge serving rewind, the admin API) reads them, with no shared folder. Each object is one file (its name is the
 * path); a put is atomic for readers (the object's metadata is written after its chunks), as the directory's rename is.
 */
export class ObjectRecordingStore implements RecordingStore {
  private constructor(
    private readonly os: ObjectStore,
    private readonly stall: ReadStallLimits,
  ) {}

  static async open(nc: NatsConnection, bucket: string, replicas: number, stall = STALL_LIMITS): Promise<ObjectRecordingStore> {
    try {
      const os = await new Objm(nc).create(bucket, { storage: StorageType.File, replicas });
      return new ObjectRecordingStore(os, stall);
    } catch (err) {
      throw new RelayError('BUS_UNAVAILABLE', `cannot open the recordings' object store ${bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  async write(path: string, data: Buffer | readonly Buffer[] | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.isBuffer(data) ? data : Buffer.concat(data);
    await this.os.putBlob({ name: path }, bytes);
  }

  async read(path: string): Promise<Buffer | undefined> {
    const parts: Uint8Array[] = [];
    try {
      for await (const chunk of this.chunks(path)) parts.push(chunk);
    } catch (err) {
      if (err instanceof RelayError && err.code === 'RECORDING_NOT_FOUND') return undefined;
      throw err;
    }
    const only = parts.length === 1 ? parts[0]! : undefined;
    return only ? Buffer.from(only.buffer, only.byteOffset, only.byteLength) : Buffer.concat(parts);
  }

  async stat(path: string): Promise<number | undefined> {
    const info = await this.os.info(path);
    return info && !info.deleted ? info.size : undefined;
  }

  open(path: string, range?: { start: number; end: number }): Readable {
    const chunks = this.chunks(path);
    return Readable.from(
      (async function* () {
        // Object stores read from the start: a range skips to its first byte.
        let at = 0;
        for await (const chunk of chunks) {
          const from = range ? Math.max(0, range.start - at) : 0;
          const to = range ? Math.min(chunk.length, range.end + 1 - at) : chunk.length;
          at += chunk.length;
          if (to > from) yield Buffer.from(chunk.buffer, chunk.byteOffset + from, to - from);
          if (range && at > range.end) break;
        }
      })(),
      { objectMode: false },
    );
  }

  /**
   * An object's chunks, in order. nats.js reads an object by its metadata, then by a consumer of its chunks: when the
   * object is deleted between the two (retention removing a recording while a viewer or the admin API reads it), the
   * chunks are gone and that consumer waits forever. So a read that stalls looks at the object again every second:
   * removed or replaced, it ends with RECORDING_NOT_FOUND; still there but silent for 30 s (its chunks lost), with
   * BUS_UNAVAILABLE.
   */
  private async *chunks(path: string): AsyncGenerator<Uint8Array> {
    const result = await this.os.get(path);
    if (!result) throw new RelayError('RECORDING_NOT_FOUND', path);
    const reader = result.data.getReader();
    let done = false;
    try {
      let silentMs = 0;
      let pending = reader.read();
      for (;;) {
        const next = await within(pending, this.stall.checkMs);
        if (next === undefined) {
          silentMs += this.stall.checkMs;
          const now = await this.os.info(path);
          if (!now || now.deleted || now.nuid !== result.info.nuid) throw new RelayError('RECORDING_NOT_FOUND', `${path} was removed while it was read`);
          if (silentMs >= this.stall.limitMs) throw new RelayError('BUS_UNAVAILABLE', `no data of ${path} came from NATS for ${silentMs / 1000} s`);
          continue;
        }
        if (next.done) break;
        silentMs = 0;
        yield next.value;
        pending = reader.read();
      }
      done = true;
    } finally {
      // Stops nats.js's consumer of the chunks when the read ends early (a range served, a client gone, an error).
      if (!done) await reader.cancel().catch(() => undefined);
    }
    const error = await result.error;
    if (error) throw error;
  }

  /** Every object under a folder, with its size (the object store has no folders: names with its prefix). */
  private async under(dir: string): Promise<{ name: string; size: number }[]> {
    const prefix = dir ? `${dir.replace(/\/$/, '')}/` : '';
    return (await this.os.list()).filter((i) => !i.deleted && i.name.startsWith(prefix)).map((i) => ({ name: i.name, size: i.size }));
  }

  async list(dir: string): Promise<string[]> {
    const prefix = dir ? `${dir.replace(/\/$/, '')}/` : '';
    const names = new Set<string>();
    for (const { name } of await this.under(dir)) names.add(name.slice(prefix.length).split('/')[0]!);
    return [...names].sort();
  }

  async size(dir: string): Promise<number> {
    return (await this.under(dir)).reduce((sum, o) => sum + o.size, 0);
  }

  async remove(path: string): Promise<void> {
    const exact = await this.os.info(path);
    if (exact && !exact.deleted) await this.os.delete(path);
    for (const { name } of await this.under(path)) await this.os.delete(name);
  }

  async withLocalFolder<T>(dir: string, use: (local: string) => Promise<T>): Promise<T> {
    const local = await mkdtemp(join(tmpdir(), 'relay-recording-'));
    try {
      const prefix = `${dir.replace(/\/$/, '')}/`;
      for (const { name } of await this.under(dir)) {
        const file = join(local, name.slice(prefix.length));
        await mkdir(dirname(file), { recursive: true });
        await pipeline(this.open(name), createWriteStream(file));
      }
      return await use(local);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }

  async putFile(path: string, localFile: string): Promise<void> {
    // Streamed: a long recording's MP4 is gigabytes.
    await this.os.put({ name: path }, Readable.toWeb(createReadStream(localFile)) as ReadableStream<Uint8Array>);
    await rm(localFile, { force: true });
  }
}
