import { readFileSync } from 'node:fs';

export interface FlvTag {
  type: number;
  timestamp: number;
  body: Buffer;
}

/** Splits an FLV file into tags (for fixtures; the relay itself reads tags from RTMP). */
export function readFlvTags(bytes: Buffer): FlvTag[] {
  if (bytes.subarray(0, 3).toString('latin1') !== 'FLV') throw new Error('not an FLV file');
  const tags: FlvTag[] = [];
  let pos = bytes.readUInt32BE(5) + 4;
  while (pos + 11 <= bytes.length) {
    const type = bytes[pos]! & 0x1f;
    const size = bytes.readUIntBE(pos + 1, 3);
    const timestamp = (bytes.readUIntBE(pos + 4, 3) | (bytes[pos + 7]! << 24)) >>> 0;
    const body = bytes.subarray(pos + 11, pos + 11 + size);
    if (body.length < size) break;
    tags.push({ type, timestamp, body });
    pos += 11 + size + 4;
  }
  return tags;
}

export function readFlvFile(path: string): FlvTag[] {
  return readFlvTags(readFileSync(path));
}

export const FIXTURE_OBS_LIKE = new URL('../fixtures/obs-like-2s.flv', import.meta.url).pathname;
