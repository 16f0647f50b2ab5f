import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Objm, StorageType, type NatsConnection, type ObjectStore } from '../bus/nats.ts';
import { RelayError } from '../errors.ts';
import type { RecordingStore } from './store.ts';

/**
 * Recordings in a NATS Object Store bucket: replicated across the NATS cluster (`replicas`), so that any node (an
 * edge serving rewind, the admin API) reads them, with no shared folder. Each object is one file (its name is the
 * path); a put is atomic for readers (the object's metadata is written after its chunks), as the directory's rename is.
 */
export class ObjectRecordingStore implements RecordingStore {
  private constructor(private readonly os: ObjectStore) {}

  static async open(nc: NatsConnection, bucket: string, replicas: number): Promise<ObjectRecordingStore> {
    try {
      const os = await new Objm(nc).create(bucket, { storage: StorageType.File, replicas });
      return new ObjectRecordingStore(os);
    } catch (err) {
      throw new RelayError('BUS_UNAVAILABLE', `cannot open the recordings' object store ${bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  async write(path: string, data: Buffer | readonly Buffer[] | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.isBuffer(data) ? data : Buffer.concat(data);
    await this.os.putBlob({ name: path }, bytes);
  }

  async read(path: string): Promise<Buffer | undefined> {
    const blob = await this.os.getBlob(path);
    return blob ? Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength) : undefined;
  }

  async stat(path: string): Promise<number | undefined> {
    const info = await this.os.info(path);
    return info && !info.deleted ? info.size : undefined;
  }

  open(path: string, range?: { start: number; end: number }): Readable {
    const os = this.os;
    return Readable.from(
      (async function* () {
        const result = await os.get(path);
        if (!result) throw new RelayError('RECORDING_NOT_FOUND', path);
        // Object stores read from the start: a range skips to its first byte.
        let at = 0;
        for await (const chunk of result.data as unknown as AsyncIterable<Uint8Array>) {
          const from = range ? Math.max(0, range.start - at) : 0;
          const to = range ? Math.min(chunk.length, range.end + 1 - at) : chunk.length;
          at += chunk.length;
          if (to > from) yield Buffer.from(chunk.buffer, chunk.byteOffset + from, to - from);
          if (range && at > range.end) break;
        }
        const error = await result.error;
        if (error) throw error;
      })(),
      { objectMode: false },
    );
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
