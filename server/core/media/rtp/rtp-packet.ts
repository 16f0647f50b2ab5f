import type { RtpPacketLike } from './h264-depacketizer.ts';

/**
 * An RTP packet's fields and payload (RFC 3550, 5.1), read in place: the payload is a view of
 * `packet`, past the CSRC list and the header extension, before any padding. Undefined for what
 * is not RTP version 2 or whose lengths do not fit.
 */
export function readRtpPacket(packet: Buffer): (RtpPacketLike & { payloadType: number; ssrc: number }) | undefined {
  if (packet.length < 12 || packet[0]! >> 6 !== 2) return undefined;
  const padding = (packet[0]! & 0x20) !== 0;
  const extension = (packet[0]! & 0x10) !== 0;
  let at = 12 + (packet[0]! & 0x0f) * 4;
  if (extension) {
    if (at + 4 > packet.length) return undefined;
    at += 4 + packet.readUInt16BE(at + 2) * 4;
  }
  let end = packet.length;
  if (padding) {
    if (end === 0) return undefined;
    end -= packet[end - 1]!;
  }
  if (at > end) return undefined;
  return {
    payloadType: packet[1]! & 0x7f,
    marker: (packet[1]! & 0x80) !== 0,
    sequenceNumber: packet.readUInt16BE(2),
    timestamp: packet.readUInt32BE(4),
    ssrc: packet.readUInt32BE(8),
    payload: packet.subarray(at, end),
  };
}
