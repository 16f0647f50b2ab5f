import { RelayError } from '../errors.ts';
import { BitReader, unescapeRbsp } from './bit-reader.ts';

export interface HevcDecoderConfig {
  /** Bytes per NAL unit length prefix in samples (1, 2 or 4). */
  lengthSize: number;
  /** RFC 6381 / ISO/IEC 14496-15 Annex E, e.g. `hvc1.1.6.L93.B0`. */
  codecString: string;
  width: number;
  height: number;
}

const SPS_NAL_TYPE = 33;

/** Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1): the codec string, and the picture size from its SPS. */
export function parseHvcC(hvcC: Buffer): HevcDecoderConfig {
  const fail = (why: string): never => {
    throw new RelayError('CODEC_UNSUPPORTED', `bad HEVC decoder configuration: ${why}`);
  };
  if (hvcC.length < 23) fail('too short');
  if (hvcC[0] !== 1) fail(`version ${hvcC[0]}`);
  const profileSpace = hvcC[1]! >> 6;
  const tier = (hvcC[1]! >> 5) & 1;
  const profileIdc = hvcC[1]! & 0x1f;
  const compatibility = hvcC.readUInt32BE(2);
  const constraints = hvcC.subarray(6, 12);
  const levelIdc = hvcC[12]!;
  const lengthSize = (hvcC[21]! & 3) + 1;
  let sps: Buffer | undefined;
  let pos = 23;
  for (let a = 0; a < hvcC[22]!; a++) {
    if (pos + 3 > hvcC.length) fail('truncated parameter set array');
    const type = hvcC[pos]! & 0x3f;
    const count = hvcC.readUInt16BE(pos + 1);
    pos += 3;
    for (let i = 0; i < count; i++) {
      if (pos + 2 > hvcC.length) fail('truncated parameter set');
      const len = hvcC.readUInt16BE(pos);
      pos += 2;
      if (pos + len > hvcC.length) fail('truncated parameter set');
      if (type === SPS_NAL_TYPE) sps ??= hvcC.subarray(pos, pos + len);
      pos += len;
    }
  }
  if (!sps) fail('no SPS');
  let size: { width: number; height: number };
  try {
    size = parseHevcSpsDimensions(sps!);
  } catch (err) {
    return fail(`unreadable SPS (${(err as Error).message})`);
  }
  // Annex E: the compatibility flags in reverse bit order, the constraint bytes without trailing zeros.
  let reversed = 0;
  for (let i = 0; i < 32; i++) if (compatibility & (1 << i)) reversed |= 1 << (31 - i);
  const constraintBytes = [...constraints];
  while (constraintBytes.length > 0 && constraintBytes.at(-1) === 0) constraintBytes.pop();
  const parts = [
    'hvc1',
    `${['', 'A', 'B', 'C'][profileSpace]}${profileIdc}`,
    (reversed >>> 0).toString(16).toUpperCase(),
    `${tier ? 'H' : 'L'}${levelIdc}`,
    ...constraintBytes.map((b) => b.toString(16).toUpperCase()),
  ];
  return { lengthSize, codecString: parts.join('.'), ...size };
}

/**
 * An SPS read up to the picture size after the conformance window: what the picture size and the
 * hvcC need. `r` stands at the bit depths, for a caller that wants them.
 */
function readSpsStart(spsNal: Uint8Array) {
  const rbsp = unescapeRbsp(spsNal.subarray(2));
  const r = new BitReader(rbsp);
  r.bits(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.bits(3);
  const temporalIdNesting = r.bool();
  // profile_tier_level(1, maxSubLayersMinus1): the general part is 88 bits of profile and 8 of level, byte-aligned here.
  const generalProfile = Buffer.from(rbsp.subarray(1, 13));
  r.bits(32);
  r.bits(32);
  r.bits(32);
  const subLayers: { profile: boolean; level: boolean }[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) subLayers.push({ profile: r.bool(), level: r.bool() });
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.bits(2);
  for (const s of subLayers) {
    if (s.profile) {
      r.bits(32);
      r.bits(32);
      r.bits(24);
    }
    if (s.level) r.bits(8);
  }
  r.ue(); // sps_seq_parameter_set_id
  const chromaFormatIdc = r.ue();
  const separateColourPlane = chromaFormatIdc === 3 ? r.bool() : false;
  let width = r.ue();
  let height = r.ue();
  if (r.bool()) {
    // conformance_window_flag: offsets in chroma units
    const chroma = separateColourPlane ? 0 : chromaFormatIdc;
    const subWidthC = chroma === 1 || chroma === 2 ? 2 : 1;
    const subHeightC = chroma === 1 ? 2 : 1;
    const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
    width -= subWidthC * (left + right);
    height -= subHeightC * (top + bottom);
  }
  return { r, generalProfile, maxSubLayersMinus1, temporalIdNesting, chromaFormatIdc, width, height };
}

/** Picture size after the conformance window, from an HEVC SPS NAL unit (2-byte header included). */
export function parseHevcSpsDimensions(spsNal: Uint8Array): { width: number; height: number } {
  const { width, height } = readSpsStart(spsNal);
  return { width, height };
}

/** What an hvcC needs of an SPS: the profile_tier_level's general part as it is, and the formats. */
interface HevcSpsHeader {
  /** general_profile_space, tier, profile_idc, compatibility flags, 48 constraint bits, level_idc: 12 bytes. */
  generalProfile: Buffer;
  maxSubLayersMinus1: number;
  temporalIdNesting: boolean;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
}

function readHevcSpsHeader(spsNal: Uint8Array): HevcSpsHeader {
  const { r, generalProfile, maxSubLayersMinus1, temporalIdNesting, chromaFormatIdc } = readSpsStart(spsNal);
  if (generalProfile.length < 12) throw new RangeError('SPS too short');
  return { generalProfile, maxSubLayersMinus1, temporalIdNesting, chromaFormatIdc, bitDepthLumaMinus8: r.ue(), bitDepthChromaMinus8: r.ue() };
}

/**
 * An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) from one VPS, SPS and PPS (NAL units,
 * 2-byte headers included), 4-byte lengths, the arrays marked complete (hvc1: parameter sets only
 * here). What no parameter set says is written as unknown: no minimum spatial segmentation, mixed
 * parallelism, no frame rate.
 */
export function buildHvcC(vps: Buffer, sps: Buffer, pps: Buffer): Buffer {
  let h: HevcSpsHeader;
  try {
    h = readHevcSpsHeader(sps);
  } catch (err) {
    throw new RelayError('CODEC_UNSUPPORTED', `unreadable HEVC SPS (${(err as Error).message})`);
  }
  const sets: [number, Buffer][] = [
    [32, vps],
    [SPS_NAL_TYPE, sps],
    [34, pps],
  ];
  const out = Buffer.alloc(23 + sets.reduce((n, [, nal]) => n + 5 + nal.length, 0));
  out[0] = 1;
  h.generalProfile.copy(out, 1);
  out.writeUInt16BE(0xf000, 13); // reserved, min_spatial_segmentation_idc 0
  out[15] = 0xfc; // reserved, parallelismType 0 (unknown)
  out[16] = 0xfc | (h.chromaFormatIdc & 3);
  out[17] = 0xf8 | (h.bitDepthLumaMinus8 & 7);
  out[18] = 0xf8 | (h.bitDepthChromaMinus8 & 7);
  out.writeUInt16BE(0, 19); // avgFrameRate: unknown
  out[21] = ((h.maxSubLayersMinus1 + 1) << 3) | ((h.temporalIdNesting ? 1 : 0) << 2) | 3; // constantFrameRate 0, lengthSizeMinusOne 3
  out[22] = sets.length;
  let p = 23;
  for (const [type, nal] of sets) {
    out[p] = 0x80 | type; // array_completeness
    out.writeUInt16BE(1, p + 1);
    out.writeUInt16BE(nal.length, p + 3);
    nal.copy(out, p + 5);
    p += 5 + nal.length;
  }
  return out;
}
