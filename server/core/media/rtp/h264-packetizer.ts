import { RelayError } from '../../errors.ts';

/** NAL unit types (H.264 Table 7-1) the packetizer treats specially. */
const NAL_AUD = 9;
const NAL_FILLER = 12;
const STAP_A = 24;
const FU_A = 28;

/** The largest RTP payload sent: fits a 1280-byte path MTU after RTP, SRTP and UDP/IP headers. */
export const DEFAULT_MAX_PAYLOAD = 1200;

/**
 * RFC 6184 (non-interleaved mode) packetization of one H.264 access unit.
 *
 * Input: the AVCC payload of a frame (length-prefixed NAL units) and, for a
 * keyframe, the parameter sets to send before it (a new viewer starts there).
 * Output: the RTP payloads in order; the last one carries the marker bit.
 * NAL units that fit go as single-NAL packets (views into the frame, no copy);
 * larger ones as FU-A fragments (one allocation for all of a frame's fragments);
 * parameter sets together as one STAP-A. Access unit delimiters and filler are
 * dropped (RFC 6184 5.2 allows it; they mean nothing to a WebRTC receiver).
 */
export function packetizeH264(avcc: Buffer, lengthSize: number, parameterSets: readonly Buffer[] = [], maxPayload = DEFAULT_MAX_PAYLOAD): Buffer[] {
  if (maxPayload < 64) throw new RelayError('CONFIG_INVALID', `RTP payload size ${maxPayload} is too small`);
  const nals = splitAvcc(avcc, lengthSize);
  const out: Buffer[] = [];
  if (parameterSets.length > 0) out.push(...stapA(parameterSets, maxPayload));
  // One buffer for every FU-A fragment of this frame: each fragment is its 2-byte header and a copy of its part.
  let fuBytes = 0;
  for (const nal of nals) {
    if (nal.length > maxPayload) {
      const parts = Math.ceil((nal.length - 1) / (maxPayload - 2));
      fuBytes += nal.length - 1 + parts * 2;
    }
  }
  const fu = fuBytes > 0 ? Buffer.allocUnsafe(fuBytes) : undefined;
  let at = 0;
  for (const nal of nals) {
    if (nal.length <= maxPayload) {
      out.push(nal);
      continue;
    }
    const indicator = (nal[0]! & 0xe0) | FU_A;
    const type = nal[0]! & 0x1f;
    const body = nal.length - 1;
    const parts = Math.ceil(body / (maxPayload - 2));
    // Even sizes: the last fragment is not a sliver.
    const step = Math.ceil(body / parts);
    for (let i = 0, from = 1; i < parts; i++, from += step) {
      const to = Math.min(from + step, nal.length);
      const start = at;
      fu![at++] = indicator;
      fu![at++] = (i === 0 ? 0x80 : 0) | (i === parts - 1 ? 0x40 : 0) | type;
      at += nal.copy(fu!, at, from, to);
      out.push(fu!.subarray(start, at));
    }
  }
  return out;
}

/** The NAL units of an AVCC access unit, as views (AUD and filler left out). */
export function splitAvcc(avcc: Buffer, lengthSize: number): Buffer[] {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) throw new RelayError('CODEC_UNSUPPORTED', `NAL length size ${lengthSize}`);
  const nals: Buffer[] = [];
  for (let pos = 0; pos < avcc.length;) {
    if (pos + lengthSize > avcc.length) throw new RelayError('CODEC_UNSUPPORTED', 'truncated NAL length in an access unit');
    const size = avcc.readUIntBE(pos, lengthSize);
    pos += lengthSize;
    if (size === 0) continue;
    if (pos + size > avcc.length) throw new RelayError('CODEC_UNSUPPORTED', `a NAL unit of ${size} bytes overruns its access unit`);
    const nal = avcc.subarray(pos, pos + size);
    pos += size;
    const type = nal[0]! & 0x1f;
    if (type !== NAL_AUD && type !== NAL_FILLER) nals.push(nal);
  }
  return nals;
}

/** Parameter sets aggregated in STAP-A packets (RFC 6184 5.7.1); one that alone is too big goes as is. */
function stapA(sets: readonly Buffer[], maxPayload: number): Buffer[] {
  const out: Buffer[] = [];
  let group: Buffer[] = [];
  let size = 1;
  const flush = () => {
    if (group.length === 1) out.push(group[0]!);
    else if (group.length > 1) {
      const packet = Buffer.allocUnsafe(size);
      let nri = 0;
      for (const s of group) nri = Math.max(nri, s[0]! & 0x60);
      packet[0] = nri | STAP_A;
      let at = 1;
      for (const s of group) {
        packet.writeUInt16BE(s.length, at);
        at += 2 + s.copy(packet, at + 2);
      }
      out.push(packet);
    }
    group = [];
    size = 1;
  };
  for (const set of sets) {
    if (set.length === 0) continue;
    if (size + 2 + set.length > maxPayload) flush();
    group.push(set);
    size += 2 + set.length;
  }
  flush();
  return out;
}
