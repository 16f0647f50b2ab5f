import { RelayError } from '../../errors.ts';

export interface FlvTag {
  type: number;
  timestampMs: number;
  body: Buffer;
}

/** Far above any encoded frame; a larger size means a corrupt stream. */
const MAX_TAG_BYTES = 8 * 1024 * 1024;

/**
 * Splits an FLV byte stream, arriving in chunks of any size (a pipe from ffmpeg),
 * into tags. Pure and bounded; bodies are copies the caller may keep.
 */
export class FlvTagStream {
  private pending: Buffer = Buffer.alloc(0);
  private headerDone = false;

  push(chunk: Buffer): FlvTag[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const tags: FlvTag[] = [];
    let pos = 0;
    if (!this.headerDone) {
      if (this.pending.length < 9) return tags;
      if (this.pending.toString('latin1', 0, 3) !== 'FLV') throw new RelayError('RTMP_PROTOCOL_ERROR', 'not an FLV stream');
      const headerSize = this.pending.readUInt32BE(5);
      if (this.pending.length < headerSize + 4) return tags;
      pos = headerSize + 4;
      this.headerDone = true;
    }
    while (this.pending.length - pos >= 11) {
      const size = this.pending.readUIntBE(pos + 1, 3);
      if (size > MAX_TAG_BYTES) throw new RelayError('RTMP_PROTOCOL_ERROR', `FLV tag of ${size} bytes`);
      if (this.pending.length - pos < 11 + size + 4) break;
      const timestampMs = (this.pending.readUIntBE(pos + 4, 3) | (this.pending[pos + 7]! << 24)) >>> 0;
      tags.push({ type: this.pending[pos]! & 0x1f, timestampMs, body: Buffer.from(this.pending.subarray(pos + 11, pos + 11 + size)) });
      pos += 11 + size + 4;
    }
    this.pending = pos === 0 ? this.pending : Buffer.from(this.pending.subarray(pos));
    return tags;
  }
}
