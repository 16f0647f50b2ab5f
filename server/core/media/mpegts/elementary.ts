import { RelayError } from '../../errors.ts';
import { parseAudioSpecificConfig } from '../aac.ts';
import type { AudioConfig, VideoConfig } from '../frame.ts';
import { buildAvcC, parseAvcC } from '../h264.ts';
import { buildHvcC, parseHvcC } from '../hevc.ts';
import { opusPacketSamples } from '../opus.ts';

/**
 * The elementary streams MPEG-TS carries, read into what the relay's frames hold:
 * H.264 and HEVC in Annex B into length-prefixed NAL units and an avcC or hvcC, AAC in ADTS into raw
 * access units and an AudioSpecificConfig, Opus behind its TS control headers into
 * Opus packets. Pure functions of bytes.
 */

const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
/** A bound on one picture; a larger one means a broken stream. */
const MAX_PICTURE_BYTES = 8 * 1024 * 1024;

/** The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01), without their start codes. */
export function splitAnnexB(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = -1;
  let i = 0;
  const n = data.length;
  while (i + 2 < n) {
    if (data[i + 2]! > 1) {
      i += 3;
    } else if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) {
        let end = i;
        while (end > start && data[end - 1] === 0) end--; // a 4-byte start code's leading zero, trailing_zero_8bits
        if (end > start) out.push(data.subarray(start, end));
      }
      i += 3;
      start = i;
    } else {
      i++;
    }
  }
  if (start >= 0) {
    let end = n;
    while (end > start && data[end - 1] === 0) end--; // a NAL unit never ends in a zero byte
    if (end > start) out.push(data.subarray(start, end));
  }
  return out;
}

export interface H264Picture {
  /** 4-byte length-prefixed NAL units: the picture's slices and SEI; parameter sets and delimiters left out. */
  payload: Buffer;
  /** Carries an IDR slice. */
  keyframe: boolean;
}

/**
 * H.264 access units in Annex B -> pictures, keeping the parameter sets in force.
 * `config` changes (a new object) when a keyframe brings different SPS or PPS.
 */
export class H264AnnexBReader {
  private sps: Buffer | undefined;
  private pps: Buffer | undefined;
  config: VideoConfig | undefined;

  read(accessUnit: Buffer): H264Picture | undefined {
    const nalus = splitAnnexB(accessUnit);
    let size = 0;
    let keyframe = false;
    let slices = 0;
    for (const nal of nalus) {
      const type = nal[0]! & 0x1f;
      if (type === NAL_SPS) this.sps = Buffer.from(nal);
      else if (type === NAL_PPS) this.pps = Buffer.from(nal);
      else if (type !== NAL_AUD) {
        size += 4 + nal.length;
        if (type === NAL_IDR) keyframe = true;
        if (type >= 1 && type <= 5) slices++;
      }
    }
    if (slices === 0) return undefined; // parameter sets or SEI alone: nothing to decode
    if (size > MAX_PICTURE_BYTES) throw new RelayError('CODEC_UNSUPPORTED', `H.264 picture of ${size} bytes`);
    if (keyframe) this.updateConfig();
    const payload = Buffer.allocUnsafe(size);
    let p = 0;
    for (const nal of nalus) {
      const type = nal[0]! & 0x1f;
      if (type === NAL_SPS || type === NAL_PPS || type === NAL_AUD) continue;
      payload.writeUInt32BE(nal.length, p);
      p += 4 + nal.copy(payload, p + 4);
    }
    return { payload, keyframe };
  }

  private updateConfig(): void {
    if (!this.sps || !this.pps) throw new RelayError('CODEC_UNSUPPORTED', 'an H.264 keyframe without SPS and PPS before it');
    const avcC = buildAvcC(this.sps, this.pps);
    if (this.config?.config.equals(avcC)) return;
    const parsed = parseAvcC(avcC);
    this.config = { codec: 'h264', config: avcC, codecString: parsed.codecString, width: parsed.width, height: parsed.height };
  }
}

const HEVC_VPS = 32;
const HEVC_SPS = 33;
const HEVC_PPS = 34;
const HEVC_AUD = 35;

/**
 * HEVC access units in Annex B -> pictures (the same shape as H.264's), keeping the VPS, SPS and
 * PPS in force for the hvcC. A keyframe is an IRAP picture (BLA, IDR, CRA: NAL types 16-23).
 */
export class HevcAnnexBReader {
  private vps: Buffer | undefined;
  private sps: Buffer | undefined;
  private pps: Buffer | undefined;
  config: VideoConfig | undefined;

  read(accessUnit: Buffer): H264Picture | undefined {
    const nalus = splitAnnexB(accessUnit).filter((n) => n.length >= 2);
    let size = 0;
    let keyframe = false;
    let slices = 0;
    const kept: Buffer[] = [];
    for (const nal of nalus) {
      const type = (nal[0]! >> 1) & 0x3f;
      if (type === HEVC_VPS) this.vps = Buffer.from(nal);
      else if (type === HEVC_SPS) this.sps = Buffer.from(nal);
      else if (type === HEVC_PPS) this.pps = Buffer.from(nal);
      else if (type !== HEVC_AUD) {
        kept.push(nal);
        size += 4 + nal.length;
        if (type <= 31) slices++; // VCL NAL units
        if (type >= 16 && type <= 23) keyframe = true;
      }
    }
    if (slices === 0) return undefined;
    if (size > MAX_PICTURE_BYTES) throw new RelayError('CODEC_UNSUPPORTED', `HEVC picture of ${size} bytes`);
    if (keyframe) this.updateConfig();
    const payload = Buffer.allocUnsafe(size);
    let p = 0;
    for (const nal of kept) {
      payload.writeUInt32BE(nal.length, p);
      p += 4 + nal.copy(payload, p + 4);
    }
    return { payload, keyframe };
  }

  private updateConfig(): void {
    if (!this.vps || !this.sps || !this.pps) throw new RelayError('CODEC_UNSUPPORTED', 'an HEVC keyframe without VPS, SPS and PPS before it');
    const hvcC = buildHvcC(this.vps, this.sps, this.pps);
    if (this.config?.config.equals(hvcC)) return;
    const parsed = parseHvcC(hvcC);
    this.config = { codec: 'hevc', config: hvcC, codecString: parsed.codecString, width: parsed.width, height: parsed.height };
  }
}

const ADTS_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export interface AdtsFrame {
  /** One raw AAC access unit (the ADTS header left out). */
  payload: Buffer;
  /** Its index in the PES: the frame's time is the PES time plus index x 1024 samples. */
  index: number;
}

/**
 * AAC in ADTS (ISO/IEC 13818-7 / 14496-3 1.A.2) -> raw access units and the
 * AudioSpecificConfig they need. `config` changes (a new object) with the profile,
 * rate or channels.
 */
export class AdtsReader {
  config: AudioConfig | undefined;

  read(pes: Buffer): AdtsFrame[] {
    const out: AdtsFrame[] = [];
    let p = 0;
    while (p + 7 <= pes.length) {
      if (pes[p] !== 0xff || (pes[p + 1]! & 0xf6) !== 0xf0) throw new RelayError('CODEC_UNSUPPORTED', `no ADTS sync word at byte ${p} of an AAC PES`);
      const protectionAbsent = pes[p + 1]! & 1;
      const profile = pes[p + 2]! >> 6;
      const rateIndex = (pes[p + 2]! >> 2) & 0x0f;
      const channels = ((pes[p + 2]! & 1) << 2) | (pes[p + 3]! >> 6);
      const length = ((pes[p + 3]! & 3) << 11) | (pes[p + 4]! << 3) | (pes[p + 5]! >> 5);
      const blocks = (pes[p + 6]! & 3) + 1;
      const header = protectionAbsent ? 7 : 9;
      if (length < header || p + length > pes.length)
        throw new RelayError('CODEC_UNSUPPORTED', `an ADTS frame of ${length} bytes at byte ${p} of ${pes.length}`);
      if (blocks !== 1) throw new RelayError('CODEC_UNSUPPORTED', `ADTS frames of ${blocks} raw data blocks`);
      const rate = ADTS_RATES[rateIndex];
      if (!rate) throw new RelayError('CODEC_UNSUPPORTED', `ADTS sampling frequency index ${rateIndex}`);
      this.updateConfig(profile + 1, rateIndex, channels);
      out.push({ payload: pes.subarray(p + header, p + length), index: out.length });
      p += length;
    }
    return out;
  }

  private updateConfig(objectType: number, rateIndex: number, channels: number): void {
    const asc = Buffer.from([(objectType << 3) | (rateIndex >> 1), ((rateIndex & 1) << 7) | (channels << 3)]);
    if (this.config?.config.equals(asc)) return;
    const parsed = parseAudioSpecificConfig(asc);
    this.config = { codec: 'aac', config: asc, codecString: parsed.codecString, sampleRate: parsed.sampleRate, channels: parsed.channels };
  }
}

export interface OpusTsPacket {
  payload: Buffer;
  /** 48 kHz samples before this packet in the PES (its time is the PES time plus these). */
  offset: number;
}

/**
 * Opus in MPEG-TS (the ETSI draft mapping that ffmpeg and GStreamer write): each
 * packet behind a control header, 11 bits 0x3ff, three flags (start
 * trim, end trim, control extension), then its size in 0xff-continued bytes.
 */
export function readOpusPes(pes: Buffer): OpusTsPacket[] {
  const out: OpusTsPacket[] = [];
  let p = 0;
  let offset = 0;
  while (p + 2 <= pes.length) {
    if (pes[p] !== 0x7f || (pes[p + 1]! & 0xe0) !== 0xe0) throw new RelayError('CODEC_UNSUPPORTED', `no Opus control header at byte ${p} of an Opus PES`);
    const flags = pes[p + 1]!;
    p += 2;
    let size = 0;
    for (;;) {
      if (p >= pes.length) throw new RelayError('CODEC_UNSUPPORTED', 'a truncated Opus control header');
      const b = pes[p++]!;
      size += b;
      if (b !== 0xff) break;
    }
    if (flags & 0x10) p += 2; // start trim
    if (flags & 0x08) p += 2; // end trim
    if (flags & 0x04) {
      if (p >= pes.length) throw new RelayError('CODEC_UNSUPPORTED', 'a truncated Opus control extension');
      p += 1 + pes[p]!;
    }
    if (size === 0 || p + size > pes.length) throw new RelayError('CODEC_UNSUPPORTED', `an Opus packet of ${size} bytes at byte ${p} of ${pes.length}`);
    const payload = pes.subarray(p, p + size);
    out.push({ payload, offset });
    offset += opusPacketSamples(payload);
    p += size;
  }
  return out;
}
