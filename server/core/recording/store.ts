import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { RelayError } from '../errors.ts';

/**
 * Where recordings live: files under paths like `<recording id>/<rendition>/000001.m4s`. Every write is whole and
 * atomic (a reader, or a recorder restarted after kill -9, finds the old file or the new one, never a part), so a
 * playlist never names a segment that is not complete.
 */
export interface RecordingStore {
  /** Writes a whole file, atomically, durably (on disk before it is renamed into place). */
  write(path: string, data: Buffer | readonly Buffer[] | string): Promise<void>;
  read(path: string): Promise<Buffer | undefined>;
  /** A file's size, or undefined when there is no such file. */
  stat(path: string): Promise<number | undefined>;
  /** For downloads: the file, or the bytes `start` to `end` (inclusive) of it. */
  open(path: string, range?: { start: number; end: number }): Readable;
  /** Names directly under a folder (`''`: the top). */
  list(dir: string): Promise<string[]>;
  /** Bytes under a folder. */
  size(dir: string): Promise<number>;
  /** Removes a file or a folder with what it holds. */
  remove(path: string): Promise<void>;
  /**
   * A folder's files on this machine's disk for `use` (ffmpeg remuxing to MP4 reads files): the folder itself, or a
   * copy removed afterwards.
   */
  withLocalFolder<T>(dir: string, use: (local: string) => Promise<T>): Promise<T>;
  /** Stores a file made on this machine's disk (the MP4) at `path`, atomically; the local file goes. */
  putFile(path: string, localFile: string): Promise<void>;
}

/** A folder on local disk: the default store. */
export class DirectoryStore implements RecordingStore {
  constructor(readonly root: string) {}

  /** Paths stay under the root: no absolute paths, no `..`. */
  localPath(path: string): string {
    const clean = normalize(path);
    if (clean.startsWith('..') || clean.startsWith(sep) || clean.includes(`${sep}..${sep}`) || clean === '..')
      throw new RelayError('RECORDING_NOT_FOUND', `no recording file ${JSON.stringify(path)}`);
    return join(this.root, clean);
  }

  async write(path: string, data: Buffer | readonly Buffer[] | string): Promise<void> {
    const file = this.localPath(path);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      if (typeof data === 'string' || Buffer.isBuffer(data)) await fh.writeFile(data);
      else await fh.writev(data as Buffer[]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  async read(path: string): Promise<Buffer | undefined> {
    return readFile(this.localPath(path)).catch(notFound);
  }

  async stat(path: string): Promise<number | undefined> {
    const info = await stat(this.localPath(path)).catch(notFound);
    return info?.isFile() ? info.size : undefined;
  }

  open(path: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.localPath(path), range);
  }

  async list(dir: string): Promise<string[]> {
    const names = await readdir(this.localPath(dir || '.')).catch(notFound);
    return (names ?? []).filter((n) => !n.endsWith('.tmp')).sort();
  }

  async size(dir: string): Promise<number> {
    const entries = await readdir(this.localPath(dir), { withFileTypes: true, recursive: true }).catch(notFound);
    let total = 0;
    for (const e of entries ?? []) if (e.isFile()) total += (await stat(join(e.parentPath, e.name)).catch(notFound))?.size ?? 0;
    return total;
  }

  async remove(path: string): Promise<void> {
    await rm(this.localPath(path), { recursive: true, force: true });
  }

  withLocalFolder<T>(dir: string, use: (local: string) => Promise<T>): Promise<T> {
    return use(this.localPath(dir));
  }

  async putFile(path: string, localFile: string): Promise<void> {
    const file = this.localPath(path);
    await mkdir(dirname(file), { recursive: true });
    try {
      await rename(localFile, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Another filesystem (a tmpfs /tmp): copied beside its place, then renamed into it.
      const tmp = `${file}.${process.pid}.tmp`;
      await copyFile(localFile, tmp);
      await rename(tmp, file);
      await rm(localFile, { force: true });
    }
  }
}

function notFound(err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT') return undefined;
  throw err;
}
