import type { Readable } from 'node:stream';
import { isRecordingId, recordingPaths, type RecordingMeta } from './model.ts';
import type { RecordingStore } from './store.ts';

/**
 * The recordings in a store, as the admin API and the dashboard see them, on any node that reads the store (every
 * node with NATS Object Store storage; with a folder, the nodes that share it).
 */
export class RecordingLibrary {
  constructor(private readonly store: RecordingStore) {}

  /** Newest first; of one stream with `stream`. */
  async list(stream?: string): Promise<RecordingMeta[]> {
    const out: RecordingMeta[] = [];
    for (const id of await this.store.list('')) {
      if (!isRecordingId(id) || (stream && !id.startsWith(`${stream}-`))) continue;
      const raw = await this.store.read(recordingPaths.meta(id));
      if (!raw) continue;
      const meta = JSON.parse(raw.toString()) as RecordingMeta;
      if (!stream || meta.stream === stream) out.push(meta);
    }
    return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  async get(id: string): Promise<RecordingMeta | undefined> {
    if (!isRecordingId(id)) return undefined;
    const raw = await this.store.read(recordingPaths.meta(id));
    return raw && (JSON.parse(raw.toString()) as RecordingMeta);
  }

  /** The size of a file of a recording (`<rendition>/index.m3u8`, the MP4...), or undefined when there is none. */
  async fileSize(id: string, path: string): Promise<number | undefined> {
    return isRecordingId(id) ? this.store.stat(`${id}/${path}`) : undefined;
  }

  /** A file of a recording, or a byte range of it (after fileSize said it exists). */
  file(id: string, path: string, range?: { start: number; end: number }): Readable {
    return this.store.open(`${id}/${path}`, range);
  }

  /** Deletes a recording and its files; false when there is none. */
  async remove(id: string): Promise<boolean> {
    if (!(await this.get(id))) return false;
    await this.store.remove(id);
    return true;
  }
}
