import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readRtpPacket } from './rtp-packet.ts';
import { writeRtpHeader } from './srtp-protector.ts';

const header = (marker: boolean) => writeRtpHeader(Buffer.alloc(12), 102, marker, 0xfffe, 0x89abcdef, 0x11223344);

test('an RTP packet is read in place: its fields, and its payload past the CSRCs and the header extension, before the padding', () => {
  const plain = readRtpPacket(Buffer.concat([header(true), Buffer.from([1, 2, 3])]))!;
  assert.deepEqual(
    { pt: plain.payloadType, marker: plain.marker, seq: plain.sequenceNumber, ts: plain.timestamp, ssrc: plain.ssrc, payload: [...plain.payload] },
    { pt: 102, marker: true, seq: 0xfffe, ts: 0x89abcdef, ssrc: 0x11223344, payload: [1, 2, 3] },
  );
  // Two CSRCs, a one-byte-header extension of one word (RFC 8285), and 3 bytes of padding.
  const h = header(false);
  h[0] = 0x80 | 0x20 | 0x10 | 2;
  const csrcs = Buffer.alloc(8, 0xaa);
  const ext = Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x10, 0x07, 0x00, 0x00]);
  const bytes = Buffer.concat([h, csrcs, ext, Buffer.from([9, 8]), Buffer.from([0, 0, 3])]);
  const packet = readRtpPacket(bytes)!;
  assert.equal(packet.marker, false);
  assert.deepEqual([...packet.payload], [9, 8]);
  assert.equal(packet.payload.buffer, bytes.buffer, 'a view, no copy');
  assert.equal(packet.payload.byteOffset, bytes.byteOffset + 12 + 8 + 8);
});

test('what is not an RTP packet, or does not fit its own lengths, is not read', () => {
  assert.equal(readRtpPacket(Buffer.alloc(11)), undefined, 'shorter than a header');
  const v1 = header(false);
  v1[0] = 0x40;
  assert.equal(readRtpPacket(v1), undefined, 'version 1');
  const csrcs = header(false);
  csrcs[0] = 0x80 | 15;
  assert.equal(readRtpPacket(csrcs), undefined, '15 CSRCs announced, none there');
  const ext = header(false);
  ext[0] = 0x90;
  assert.equal(readRtpPacket(Buffer.concat([ext, Buffer.from([0xbe, 0xde, 0x00, 0x09])])), undefined, 'an extension longer than the packet');
  const pad = header(false);
  pad[0] = 0xa0;
  assert.equal(readRtpPacket(Buffer.concat([pad, Buffer.from([1, 40])])), undefined, 'more padding than the packet');
});
