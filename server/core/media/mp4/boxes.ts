/** ISO BMFF box writers for the init segment (built once per stream, so clarity wins over speed). */

export function box(type: string, ...payloads: Uint8Array[]): Buffer {
  const size = 8 + payloads.reduce((n, p) => n + p.length, 0);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size, 0);
  out.write(type, 4, 4, 'latin1');
  let pos = 8;
  for (const p of payloads) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function fullBox(type: string, version: number, flags: number, ...payloads: Uint8Array[]): Buffer {
  const head = Buffer.from([version, (flags >> 16) & 0xff, (flags >> 8) & 0xff, flags & 0xff]);
  return box(type, head, ...payloads);
}

export function u8(...values: number[]): Buffer {
  return Buffer.from(values);
}

export function u16(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(values.length * 2);
  values.forEach((v, i) => b.writeUInt16BE(v & 0xffff, i * 2));
  return b;
}

export function u32(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

export function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}

export const UNITY_MATRIX = u32(0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000);

/** MPEG-4 descriptor (ISO/IEC 14496-1) with a 4-byte expandable size, as most muxers write. */
export function descriptor(tag: number, ...payloads: Uint8Array[]): Buffer {
  const size = payloads.reduce((n, p) => n + p.length, 0);
  const head = u8(tag, 0x80 | ((size >> 21) & 0x7f), 0x80 | ((size >> 14) & 0x7f), 0x80 | ((size >> 7) & 0x7f), size & 0x7f);
  return Buffer.concat([head, ...payloads]);
}
