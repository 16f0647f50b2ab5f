import { RelayError } from '../errors.ts';
import { BitReader } from './bit-reader.ts';

export interface Av1Config {
  /** RFC 6381 per the AV1 ISOBMFF binding, e.g. `av01.0.04M.08`. */
  codecString: string;
  /** The largest picture, from the sequence header in the configuration; 0 when it has none. */
  width: number;
  height: number;
}

const OBU_SEQUENCE_HEADER = 1;
const OBU_TEMPORAL_DELIMITER = 2;

/** Parses an AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3): the codec string, and the size from its sequence header OBU. */
export function parseAv1C(av1C: Buffer): Av1Config {
  const fail = (why: string): never => {
    throw new RelayError('CODEC_UNSUPPORTED', `bad AV1 configuration: ${why}`);
  };
  if (av1C.length < 4) fail('too short');
  if (av1C[0] !== 0x81) fail(`marker and version 0x${av1C[0]!.toString(16)}`);
  const profile = av1C[1]! >> 5;
  const level = av1C[1]! & 0x1f;
  const tier = (av1C[2]! >> 7) & 1;
  const highBitdepth = (av1C[2]! >> 6) & 1;
  const twelveBit = (av1C[2]! >> 5) & 1;
  const bitDepth = highBitdepth ? (twelveBit ? 12 : 10) : 8;
  let size = { width: 0, height: 0 };
  for (const obu of readObus(av1C.subarray(4))) {
    if (obu.type !== OBU_SEQUENCE_HEADER) continue;
    try {
      size = parseSequenceHeaderSize(obu.payload);
    } catch (err) {
      fail(`unreadable sequence header (${(err as Error).message})`);
    }
    break;
  }
  const two = (n: number) => String(n).padStart(2, '0');
  return { codecString: `av01.${profile}.${two(level)}${tier ? 'H' : 'M'}.${two(bitDepth)}`, ...size };
}

interface Obu {
  type: number;
  /** The whole OBU, header and size included. */
  bytes: Buffer;
  payload: Buffer;
}

/** The OBUs of a low-overhead bitstream (each with its size field; the last may run to the end). */
export function readObus(data: Buffer): Obu[] {
  const out: Obu[] = [];
  let pos = 0;
  while (pos < data.length) {
    const start = pos;
    const header = data[pos++]!;
    if (header & 0x80) throw new RelayError('CODEC_UNSUPPORTED', 'AV1 OBU with the forbidden bit set');
    const type = (header >> 3) & 0x0f;
    if (header & 0x04) pos++; // extension header
    let size = data.length - pos;
    if (header & 0x02) {
      size = 0;
      for (let i = 0; ; i++) {
        if (pos >= data.length || i === 8) throw new RelayError('CODEC_UNSUPPORTED', 'truncated AV1 OBU size');
        const byte = data[pos++]!;
        size += (byte & 0x7f) * 2 ** (7 * i);
        if (!(byte & 0x80)) break;
      }
    }
    if (pos + size > data.length) throw new RelayError('CODEC_UNSUPPORTED', 'AV1 OBU overruns its temporal unit');
    out.push({ type, bytes: data.subarray(start, pos + size), payload: data.subarray(pos, pos + size) });
    pos += size;
  }
  return out;
}

/** An AV1 temporal unit as an MP4 sample: the same OBUs without temporal delimiters (the ISOBMFF binding keeps them out). */
export function av1Sample(temporalUnit: Buffer): Buffer {
  const obus = readObus(temporalUnit);
  if (!obus.some((o) => o.type === OBU_TEMPORAL_DELIMITER)) return temporalUnit;
  return Buffer.concat(obus.filter((o) => o.type !== OBU_TEMPORAL_DELIMITER).map((o) => o.bytes));
}

/** max_frame_width/height from a sequence_header_obu (AV1 spec 5.5.1). */
function parseSequenceHeaderSize(payload: Buffer): { width: number; height: number } {
  const r = new BitReader(payload);
  r.bits(3); // seq_profile
  r.bits(1); // still_picture
  const reduced = r.bool();
  if (reduced) {
    r.bits(5); // seq_level_idx[0]
  } else {
    const timingInfo = r.bool();
    let decoderModelInfo = false;
    let bufferDelayLength = 0;
    if (timingInfo) {
      r.bits(32); // num_units_in_display_tick
      r.bits(32); // time_scale
      if (r.bool()) uvlc(r); // equal_picture_interval: num_ticks_per_picture_minus_1
      decoderModelInfo = r.bool();
      if (decoderModelInfo) {
        bufferDelayLength = r.bits(5) + 1;
        r.bits(32); // num_units_in_decoding_tick
        r.bits(5); // buffer_removal_time_length_minus_1
        r.bits(5); // frame_presentation_time_length_minus_1
      }
    }
    const initialDisplayDelay = r.bool();
    const operatingPoints = r.bits(5) + 1;
    for (let i = 0; i < operatingPoints; i++) {
      r.bits(12); // operating_point_idc
      if (r.bits(5) > 7) r.bits(1); // seq_level_idx, seq_tier
      if (decoderModelInfo && r.bool()) {
        r.bits(bufferDelayLength); // decoder_buffer_delay
        r.bits(bufferDelayLength); // encoder_buffer_delay
        r.bits(1); // low_delay_mode_flag
      }
      if (initialDisplayDelay && r.bool()) r.bits(4);
    }
  }
  const widthBits = r.bits(4) + 1;
  const heightBits = r.bits(4) + 1;
  return { width: r.bits(widthBits) + 1, height: r.bits(heightBits) + 1 };
}

function uvlc(r: BitReader): number {
  let zeros = 0;
  while (!r.bool()) if (++zeros >= 32) return 2 ** 32 - 1;
  return zeros === 0 ? 0 : r.bits(zeros) + 2 ** zeros - 1;
}
