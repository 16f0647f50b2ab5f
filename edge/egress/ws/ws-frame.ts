/** Bytes a server-to-client binary WebSocket frame header needs at most (RFC 6455 5.2, no mask). */
export const WS_MAX_HEADER = 10;

/**
 * Writes an unmasked binary frame header in the free room in front of a
 * payload and returns the whole frame. Server frames are identical for every
 * client, so one such buffer is written to all viewers as it is.
 */
export function frameBinaryInPlace(buffer: Buffer, payloadOffset: number): Buffer {
  const length = buffer.length - payloadOffset;
  const headerSize = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const start = payloadOffset - headerSize;
  if (start < 0) throw new RangeError(`need ${headerSize} bytes of headroom, have ${payloadOffset}`);
  buffer[start] = 0x82; // FIN + binary
  if (headerSize === 2) {
    buffer[start + 1] = length;
  } else if (headerSize === 4) {
    buffer[start + 1] = 126;
    buffer.writeUInt16BE(length, start + 2);
  } else {
    buffer[start + 1] = 127;
    buffer.writeUInt32BE(Math.floor(length / 0x100000000), start + 2);
    buffer.writeUInt32BE(length >>> 0, start + 6);
  }
  return buffer.subarray(start);
}

/** A whole binary frame in a new buffer (init segments: rare, small). */
export function frameBinary(payload: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(WS_MAX_HEADER + payload.length);
  payload.copy(buf, WS_MAX_HEADER);
  return frameBinaryInPlace(buf, WS_MAX_HEADER);
}

/** A whole text frame (control messages: JSON). */
export function frameText(text: string): Buffer {
  const framed = frameBinary(Buffer.from(text, 'utf8'));
  framed[0] = 0x81; // FIN + text
  return framed;
}
