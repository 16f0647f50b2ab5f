import { RelayError } from '../../errors.ts';
import { OPUS_SAMPLE_RATE, opusPacketSamples } from '../opus.ts';

export interface OpusPacket {
  /** Where the packet's first decoded sample sits on the encoder's timeline (48 kHz samples, pre-skip included). */
  start: number;
  samples: number;
  payload: Buffer;
}

export interface OpusHead {
  channels: number;
  preSkip: number;
  inputSampleRate: number;
  /** The whole identification header, as an MP4 `dOps` or a decoder would want it. */
  bytes: Buffer;
}

/** Larger than any Ogg page can be (27 + 255 + 255 * 255). */
const MAX_PAGE_BYTES = 27 + 255 + 255 * 255;

/**
 * Reads an Ogg Opus byte stream (RFC 7845), arriving in chunks of any size from
 * an ffmpeg pipe, into Opus packets with their time. Pure and bounded.
 *
 * A page's granule position is the end of its last complete packet, counted in
 * 48 kHz samples and including the encoder's pre-skip. Each packet's start is
 * found by walking back from that end by the packets' own durations (TOC byte).
 * With ffmpeg's -copyts the granule carries the source's timeline: a packet's
 * start minus pre-skip is the source time at which its decoded samples play,
 * priming samples first.
 */
export class OggOpusReader {
  private pending: Buffer = Buffer.alloc(0);
  /** A packet continued on the next page. */
  private partial: Buffer[] = [];
  private serial: number | undefined;
  private headerPackets = 0;
  /** Where the previous packet ended. */
  private end: number | undefined;
  head: OpusHead | undefined;

  push(chunk: Buffer): OpusPacket[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: OpusPacket[] = [];
    let pos = 0;
    while (this.pending.length - pos >= 27) {
      const p = this.pending;
      if (p.toString('latin1', pos, pos + 4) !== 'OggS') throw new RelayError('CODEC_UNSUPPORTED', 'not an Ogg page');
      if (p[pos + 4] !== 0) throw new RelayError('CODEC_UNSUPPORTED', `Ogg version ${p[pos + 4]}`);
      const segments = p[pos + 26]!;
      if (p.length - pos < 27 + segments) break;
      let bodySize = 0;
      for (let i = 0; i < segments; i++) bodySize += p[pos + 27 + i]!;
      const pageSize = 27 + segments + bodySize;
      if (p.length - pos < pageSize) break;
      this.page(p.subarray(pos, pos + pageSize), segments, out);
      pos += pageSize;
    }
    this.pending = pos === 0 ? this.pending : Buffer.from(this.pending.subarray(pos));
    if (this.pending.length > MAX_PAGE_BYTES) throw new RelayError('CODEC_UNSUPPORTED', 'Ogg page larger than the format allows');
    return out;
  }

  private page(page: Buffer, segments: number, out: OpusPacket[]): void {
    const serial = page.readUInt32LE(14);
    if (this.serial === undefined) this.serial = serial;
    else if (serial !== this.serial) throw new RelayError('CODEC_UNSUPPORTED', 'Ogg stream with more than one logical stream');
    const granule = Number(page.readBigInt64LE(6));
    const continued = (page[5]! & 1) !== 0;
    if (!continued) this.partial = [];
    const packets: Buffer[] = [];
    let at = 27 + segments;
    for (let i = 0; i < segments; i++) {
      const size = page[27 + i]!;
      this.partial.push(page.subarray(at, at + size));
      at += size;
      if (size < 255) {
        packets.push(Buffer.concat(this.partial));
        this.partial = [];
      }
    }
    const audio: Buffer[] = [];
    for (const packet of packets) {
      if (this.headerPackets === 0) {
        this.readHead(packet);
        this.headerPackets++;
      } else if (this.headerPackets === 1) {
        this.headerPackets++; // OpusTags: nothing a relay needs
      } else {
        audio.push(packet);
      }
    }
    if (audio.length === 0) return;
    if (granule < 0) throw new RelayError('CODEC_UNSUPPORTED', 'Ogg page ends audio packets but has no granule position');
    const durations = audio.map(opusPacketSamples);
    // The last page's granule marks where the audio ends, which may cut its last packet short: continue from the previous page instead.
    const last = (page[5]! & 4) !== 0;
    let start = last && this.end !== undefined ? this.end : granule - durations.reduce((a, b) => a + b, 0);
    audio.forEach((payload, i) => {
      out.push({ start, samples: durations[i]!, payload });
      start += durations[i]!;
    });
    this.end = start;
  }

  private readHead(packet: Buffer): void {
    if (packet.length < 19 || packet.toString('latin1', 0, 8) !== 'OpusHead') throw new RelayError('CODEC_UNSUPPORTED', 'the Ogg stream is not Opus');
    this.head = {
      channels: packet[9]!,
      preSkip: packet.readUInt16LE(10),
      inputSampleRate: packet.readUInt32LE(12) || OPUS_SAMPLE_RATE,
      bytes: Buffer.from(packet),
    };
  }
}
