import { RelayError } from '../errors.ts';
import { BitReader, unescapeRbsp } from './bit-reader.ts';

export interface AvcDecoderConfig {
  profile: number;
  compatibility: number;
  level: number;
  /** Bytes per NAL unit length prefix in samples (1, 2 or 4). */
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
  codecString: string;
  width: number;
  height: number;
}

/** Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1). */
export function parseAvcC(avcC: Buffer): AvcDecoderConfig {
  const fail = (why: string): never => {
    throw new RelayError('CODEC_UNSUPPORTED', `bad AVC decoder configuration: ${why}`);
  };
  if (avcC.length < 7) fail('too short');
  if (avcC[0] !== 1) fail(`version ${avcC[0]}`);
  const lengthSize = (avcC[4]! & 3) + 1;
  if (lengthSize === 3) fail('NAL length size 3');
  let pos = 6;
  const readSet = (count: number): Buffer[] => {
    const sets: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (pos + 2 > avcC.length) fail('truncated parameter set');
      const len = avcC.readUInt16BE(pos);
      pos += 2;
      if (pos + len > avcC.length) fail('truncated parameter set');
      sets.push(avcC.subarray(pos, pos + len));
      pos += len;
    }
    return sets;
  };
  const sps = readSet(avcC[5]! & 0x1f);
  if (pos >= avcC.length) fail('no PPS count');
  const pps = readSet(avcC[pos++]!);
  const first = sps[0];
  if (!first || first.length < 4) fail('no SPS');
  let size: { width: number; height: number };
  try {
    size = parseSpsDimensions(first!);
  } catch (err) {
    return fail(`unreadable SPS (${(err as Error).message})`);
  }
  const { width, height } = size;
  const profile = avcC[1]!;
  const compatibility = avcC[2]!;
  const level = avcC[3]!;
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return {
    profile,
    compatibility,
    level,
    lengthSize,
    sps,
    pps,
    codecString: `avc1.${hex(profile)}${hex(compatibility)}${hex(level)}`,
    width,
    height,
  };
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Picture size after cropping, from a sequence parameter set NAL unit (header byte included). */
export function parseSpsDimensions(spsNal: Uint8Array): { width: number; height: number } {
  const r = new BitReader(unescapeRbsp(spsNal.subarray(1)));
  const profileIdc = r.bits(8);
  r.bits(16); // constraint flags, level_idc
  r.ue(); // seq_parameter_set_id
  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ue();
    if (chromaFormatIdc === 3) separateColourPlane = r.bool();
    r.ue(); // bit_depth_luma_minus8
    r.ue(); // bit_depth_chroma_minus8
    r.bool(); // qpprime_y_zero_transform_bypass_flag
    if (r.bool()) {
      const lists = chromaFormatIdc === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) {
        if (r.bool()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue();
  } else if (pocType === 1) {
    r.bool();
    r.se();
    r.se();
    const cycle = r.ue();
    for (let i = 0; i < cycle; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.bool(); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.bool();
  if (!frameMbsOnly) r.bool(); // mb_adaptive_frame_field_flag
  r.bool(); // direct_8x8_inference_flag
  let cropLeft = 0;
  let cropRight = 0;
  let cropTop = 0;
  let cropBottom = 0;
  if (r.bool()) {
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (frameMbsOnly ? 1 : 2);
  const frameHeightMbs = (frameMbsOnly ? 1 : 2) * heightMapUnits;
  return {
    width: widthMbs * 16 - cropUnitX * (cropLeft + cropRight),
    height: frameHeightMbs * 16 - cropUnitY * (cropTop + cropBottom),
  };
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Profiles whose avcC carries chroma format and bit depths after the PPS (ISO/IEC 14496-15 5.3.3.1.1). */
const AVCC_EXTENDED_PROFILES = new Set([100, 110, 122, 144]);

/** chroma_format_idc and bit depths of a High-family SPS (header byte included). */
function spsFormat(spsNal: Uint8Array): { chroma: number; lumaDepth: number; chromaDepth: number } {
  try {
    const r = new BitReader(unescapeRbsp(spsNal.subarray(1)));
    r.bits(24); // profile, constraint flags, level
    r.ue(); // seq_parameter_set_id
    const chroma = r.ue();
    if (chroma === 3) r.bool(); // separate_colour_plane_flag
    return { chroma, lumaDepth: r.ue(), chromaDepth: r.ue() };
  } catch (err) {
    throw new RelayError('CODEC_UNSUPPORTED', `unreadable SPS (${(err as Error).message})`);
  }
}

/**
 * An AVCDecoderConfigurationRecord from one SPS and one PPS (NAL units, header byte included), 4-byte
 * lengths; for High profiles with the chroma format and bit depths, as x264 and ffmpeg write it.
 */
export function buildAvcC(sps: Buffer, pps: Buffer): Buffer {
  if (sps.length < 4) throw new RelayError('CODEC_UNSUPPORTED', 'SPS too short');
  const extended = AVCC_EXTENDED_PROFILES.has(sps[1]!);
  const out = Buffer.alloc(6 + 2 + sps.length + 1 + 2 + pps.length + (extended ? 4 : 0));
  out[0] = 1;
  out[1] = sps[1]!; // profile
  out[2] = sps[2]!; // compatibility
  out[3] = sps[3]!; // level
  out[4] = 0xff; // 6 reserved bits, lengthSizeMinusOne = 3
  out[5] = 0xe1; // 3 reserved bits, one SPS
  out.writeUInt16BE(sps.length, 6);
  sps.copy(out, 8);
  let p = 8 + sps.length;
  out[p++] = 1;
  out.writeUInt16BE(pps.length, p);
  p += 2 + pps.copy(out, p + 2);
  if (extended) {
    const { chroma, lumaDepth, chromaDepth } = spsFormat(sps);
    out[p] = 0xfc | (chroma & 3);
    out[p + 1] = 0xf8 | (lumaDepth & 7);
    out[p + 2] = 0xf8 | (chromaDepth & 7);
    out[p + 3] = 0; // no SPS extensions
  }
  return out;
}
