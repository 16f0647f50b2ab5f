import { RelayError } from '../../errors.ts';
import { buildAvcC, parseAvcC } from '../h264.ts';
import type { VideoConfig } from '../frame.ts';

/** What the depacketizer needs of an RTP packet. */
export interface RtpPacketLike {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export interface AccessUnit {
  /** RTP timestamp (90 kHz) of the picture. */
  timestamp: number;
  /** AVCC: 4-byte length-prefixed NAL units, parameter sets and delimiters left out. */
  payload: Buffer;
  /** Carries an IDR slice. */
  keyframe: boolean;
  /** The configuration in force: a new object whenever the SPS or PPS change. */
  config: VideoConfig;
}

const NAL_IDR = 5;
const NAL_SEI = 6;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
const STAP_A = 24;
const FU_A = 28;
/** A bound on one picture; a larger one means a broken stream. */
const MAX_ACCESS_UNIT_BYTES = 4 * 1024 * 1024;

/**
 * RTP (RFC 6184, packetization mode 1) -> H.264 access units. Pure: packets in,
 * pictures out. Single NAL units, STAP-A and FU-A are read; a picture ends at the
 * marker bit or when the timestamp changes. A lost packet (a sequence gap) drops
 * the picture it hits and everything up to the next IDR, since a decoder cannot
 * use what follows; `needKeyframe` tells the caller to ask the sender for one (PLI).
 */
export class H264Depacketizer {
  private nalus: Buffer[] = [];
  private bytes = 0;
  private timestamp: number | undefined;
  private lastSeq: number | undefined;
  private fu: Buffer[] | undefined;
  private broken = false;
  private sps: Buffer | undefined;
  private pps: Buffer | undefined;
  private config: VideoConfig | undefined;
  /** Waiting for an IDR (at start, and after a loss). */
  needKeyframe = true;
  readonly stats = { packets: 0, lost: 0, pictures: 0, dropped: 0 };

  push(packet: RtpPacketLike): AccessUnit[] {
    this.stats.packets++;
    const out: AccessUnit[] = [];
    let lost = false;
    if (this.lastSeq !== undefined) {
      const gap = (packet.sequenceNumber - this.lastSeq - 1) & 0xffff;
      if (gap >= 0x8000) return out; // a late duplicate or reordered packet: too late for a live relay
      if (gap !== 0) {
        this.stats.lost += gap;
        lost = true;
      }
    }
    this.lastSeq = packet.sequenceNumber;
    // The lost packets belonged to the picture in progress, to this one, or to a whole
    // picture in between: which, nobody knows, so all are given up.
    if (lost) this.broken = true;
    if (this.timestamp !== undefined && packet.timestamp !== this.timestamp) this.finish(out);
    if (lost) {
      this.broken = true;
      this.fu = undefined;
    }
    this.timestamp = packet.timestamp;
    this.read(packet.payload);
    if (packet.marker) this.finish(out);
    return out;
  }

  private read(payload: Buffer): void {
    if (payload.length < 1) return;
    const type = payload[0]! & 0x1f;
    if (type >= 1 && type <= 23) {
      this.add(payload);
    } else if (type === STAP_A) {
      let p = 1;
      while (p + 2 <= payload.length) {
        const size = payload.readUInt16BE(p);
        p += 2;
        if (size === 0 || p + size > payload.length) throw new RelayError('CODEC_UNSUPPORTED', 'malformed STAP-A');
        this.add(payload.subarray(p, p + size));
        p += size;
      }
    } else if (type === FU_A) {
      if (payload.length < 3) throw new RelayError('CODEC_UNSUPPORTED', 'malformed FU-A');
      const header = payload[1]!;
      const start = (header & 0x80) !== 0;
      const end = (header & 0x40) !== 0;
      if (start) this.fu = [Buffer.from([(payload[0]! & 0xe0) | (header & 0x1f)])];
      if (!this.fu) return; // the start of this NAL unit was lost
      this.fu.push(payload.subarray(2));
      if (end) {
        this.add(Buffer.concat(this.fu));
        this.fu = undefined;
      }
    } else {
      throw new RelayError('CODEC_UNSUPPORTED', `H.264 RTP packet type ${type} (packetization mode 1 reads 1-23, 24 and 28)`);
    }
  }

  private add(nal: Buffer): void {
    const type = nal[0]! & 0x1f;
    if (type === NAL_SPS) this.sps = Buffer.from(nal);
    else if (type === NAL_PPS) this.pps = Buffer.from(nal);
    else if (type !== NAL_AUD && type !== NAL_SEI) {
      this.bytes += 4 + nal.length;
      if (this.bytes > MAX_ACCESS_UNIT_BYTES) throw new RelayError('CODEC_UNSUPPORTED', 'H.264 picture over 4 MB');
      this.nalus.push(nal);
    }
  }

  private finish(out: AccessUnit[]): void {
    const nalus = this.nalus;
    const size = this.bytes;
    const broken = this.broken || this.fu !== undefined;
    this.nalus = [];
    this.bytes = 0;
    this.fu = undefined;
    this.broken = false;
    if (broken) {
      this.needKeyframe = true;
      if (nalus.length > 0) this.stats.dropped++;
      return;
    }
    if (nalus.length === 0) return;
    const keyframe = nalus.some((n) => (n[0]! & 0x1f) === NAL_IDR);
    if (this.needKeyframe) {
      if (!keyframe || !this.sps || !this.pps) {
        this.stats.dropped++;
        return;
      }
      this.needKeyframe = false;
    }
    if (keyframe) this.updateConfig();
    const payload = Buffer.allocUnsafe(size);
    let p = 0;
    for (const nal of nalus) {
      payload.writeUInt32BE(nal.length, p);
      p += 4 + nal.copy(payload, p + 4);
    }
    this.stats.pictures++;
    out.push({ timestamp: this.timestamp!, payload, keyframe, config: this.config! });
  }

  private updateConfig(): void {
    const avcC = buildAvcC(this.sps!, this.pps!);
    if (this.config && this.config.config.equals(avcC)) return;
    const parsed = parseAvcC(avcC);
    this.config = { codec: 'h264', config: avcC, codecString: parsed.codecString, width: parsed.width, height: parsed.height };
  }
}
