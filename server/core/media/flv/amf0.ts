import { RelayError } from '../../errors.ts';

export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Value[] | { [key: string]: Amf0Value };

const MAX_DEPTH = 8;
const MAX_ENTRIES = 256;

/**
 * Decodes the AMF0 values of an FLV script tag (`onMetaData`, `@setDataFrame`).
 * Bounded: nesting depth and entry counts are capped, unknown markers fail.
 */
export function decodeAmf0(bytes: Buffer): Amf0Value[] {
  const values: Amf0Value[] = [];
  const r = { pos: 0 };
  while (r.pos < bytes.length && values.length < MAX_ENTRIES) values.push(readValue(bytes, r, 0));
  return values;
}

function need(bytes: Buffer, r: { pos: number }, n: number): void {
  if (r.pos + n > bytes.length) throw new RelayError('RTMP_PROTOCOL_ERROR', 'truncated AMF0 data');
}

function readString(bytes: Buffer, r: { pos: number }, lengthBytes: 2 | 4): string {
  need(bytes, r, lengthBytes);
  const len = lengthBytes === 2 ? bytes.readUInt16BE(r.pos) : bytes.readUInt32BE(r.pos);
  r.pos += lengthBytes;
  need(bytes, r, len);
  const s = bytes.toString('utf8', r.pos, r.pos + len);
  r.pos += len;
  return s;
}

function readProperties(bytes: Buffer, r: { pos: number }, depth: number): { [key: string]: Amf0Value } {
  const obj = Object.create(null) as { [key: string]: Amf0Value };
  for (let n = 0; n <= MAX_ENTRIES; n++) {
    const key = readString(bytes, r, 2);
    need(bytes, r, 1);
    if (key === '' && bytes[r.pos] === 0x09) {
      r.pos++;
      return obj;
    }
    obj[key] = readValue(bytes, r, depth + 1);
  }
  throw new RelayError('RTMP_PROTOCOL_ERROR', 'AMF0 object has too many properties');
}

function readValue(bytes: Buffer, r: { pos: number }, depth: number): Amf0Value {
  if (depth > MAX_DEPTH) throw new RelayError('RTMP_PROTOCOL_ERROR', 'AMF0 data nested too deep');
  need(bytes, r, 1);
  const marker = bytes[r.pos++]!;
  switch (marker) {
    case 0x00: {
      need(bytes, r, 8);
      const n = bytes.readDoubleBE(r.pos);
      r.pos += 8;
      return n;
    }
    case 0x01:
      need(bytes, r, 1);
      return bytes[r.pos++] !== 0;
    case 0x02:
      return readString(bytes, r, 2);
    case 0x03:
      return readProperties(bytes, r, depth);
    case 0x05:
      return null;
    case 0x06:
      return undefined;
    case 0x08:
      need(bytes, r, 4);
      r.pos += 4; // ECMA array count is a hint only
      return readProperties(bytes, r, depth);
    case 0x0a: {
      need(bytes, r, 4);
      const count = bytes.readUInt32BE(r.pos);
      r.pos += 4;
      if (count > MAX_ENTRIES) throw new RelayError('RTMP_PROTOCOL_ERROR', 'AMF0 array too long');
      const arr: Amf0Value[] = [];
      for (let i = 0; i < count; i++) arr.push(readValue(bytes, r, depth + 1));
      return arr;
    }
    case 0x0b: {
      need(bytes, r, 10);
      const ms = bytes.readDoubleBE(r.pos);
      r.pos += 10;
      return new Date(ms);
    }
    case 0x0c:
      return readString(bytes, r, 4);
    default:
      throw new RelayError('RTMP_PROTOCOL_ERROR', `AMF0 marker 0x${marker.toString(16)} is not supported`);
  }
}
