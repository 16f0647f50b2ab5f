import { readFileSync } from 'node:fs';
import { FlvFrameReader } from '../../server/core/media/flv/flv-frame-reader.ts';
import type { Frame } from '../../server/core/media/frame.ts';

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

/**
 * The OBS-like fixture's video frames, each followed by an Opus-like audio frame on the same clock:
 * what a WebRTC rendition's packetizer and engines are fed in unit tests (the video's B-frames do not
 * matter to packetizing).
 */
export function fixtureVideoWithOpus(): Frame[] {
  const reader = new FlvFrameReader();
  const video = readFlvFile(FIXTURE_OBS_LIKE)
    .flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [])
    .filter((f) => f.track === 'video');
  return video.flatMap((v): Frame[] => [v, { ...v, track: 'audio', codec: 'opus', keyframe: true, cto: 0, payload: Buffer.from([0xfc, 1, 2, 3]) }]);
}
