import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ControlType,
  HandshakeType,
  readHandshake,
  readHsReq,
  readLossList,
  readPacket,
  readStringExtension,
  seqAdd,
  seqDiff,
  SrtCommand,
  SrtPacketError,
  writeControl,
  writeData,
  writeHandshake,
  writeHsReq,
  writeLossList,
  writeStringExtension,
} from './srt-packet.ts';

test('a data packet reads back its sequence, flags, message number, timestamp and payload', () => {
  const payload = Buffer.from('188 bytes of TS, or seven of them');
  const wire = writeData({
    seq: 0x7ffffffe,
    position: 3,
    inOrder: false,
    key: 2,
    retransmitted: true,
    messageNumber: 12345,
    timestamp: 0xfffffff0,
    destination: 42,
    payload,
  });
  const p = readPacket(wire);
  assert.equal(p.kind, 'data');
  if (p.kind !== 'data') return;
  assert.deepEqual(
    {
      seq: p.seq,
      position: p.position,
      inOrder: p.inOrder,
      key: p.key,
      retransmitted: p.retransmitted,
      messageNumber: p.messageNumber,
      timestamp: p.timestamp,
      destination: p.destination,
    },
    { seq: 0x7ffffffe, position: 3, inOrder: false, key: 2, retransmitted: true, messageNumber: 12345, timestamp: 0xfffffff0, destination: 42 },
  );
  assert.ok(p.payload.equals(payload));
});

test('a control packet carries its type, subtype, type-specific word and body', () => {
  const wire = writeControl(ControlType.USER, SrtCommand.KMRSP, 7, 1000, 99, Buffer.from([1, 2, 3, 4]));
  assert.equal(wire[0]! & 0x80, 0x80, 'the control bit');
  const p = readPacket(wire);
  assert.ok(p.kind === 'control');
  assert.deepEqual([p.type, p.subtype, p.info, p.timestamp, p.destination, [...p.body]], [0x7fff, 4, 7, 1000, 99, [1, 2, 3, 4]]);
});

test('a handshake with extensions round-trips, and the stream id is stored as byte-reversed words, as libsrt writes it', () => {
  const hs = {
    version: 5,
    encryption: 2,
    extensionField: 5,
    isn: 123456,
    mss: 1500,
    flowWindow: 8192,
    type: HandshakeType.CONCLUSION,
    socketId: 0x1234,
    cookie: 0xdeadbeef,
    peerIp: Buffer.from([1, 0, 0, 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    extensions: [
      { type: SrtCommand.HSREQ, content: writeHsReq({ version: 0x010501, flags: 0xbf, receiverLatency: 120, senderLatency: 200 }) },
      { type: SrtCommand.SID, content: writeStringExtension('#!::r=key,m=publish') },
    ],
  };
  const back = readHandshake(writeHandshake(hs));
  assert.deepEqual(
    { ...back, peerIp: [...back.peerIp], extensions: back.extensions.map((e) => e.type) },
    { ...hs, peerIp: [...hs.peerIp], extensions: [1, 5] },
  );
  assert.deepEqual(readHsReq(back.extensions[0]!.content), { version: 0x010501, flags: 0xbf, receiverLatency: 120, senderLatency: 200 });
  assert.equal(readStringExtension(back.extensions[1]!.content), '#!::r=key,m=publish');
  assert.deepEqual([...writeStringExtension('abcde')], [0x64, 0x63, 0x62, 0x61, 0, 0, 0, 0x65]);
  assert.equal(readHandshake(writeHandshake({ ...hs, type: 1403 + 1000 })).type, 2403, 'a rejection');
});

test('loss lists: single numbers, and ranges with the top bit set on their first', () => {
  const wire = writeLossList([
    [5, 5],
    [10, 20],
    [0x7ffffff0, 0x7ffffffa],
  ]);
  assert.equal(wire.length, 4 + 8 + 8);
  assert.equal(wire.readUInt32BE(4), 0x8000000a);
  assert.deepEqual(readLossList(wire), [
    [5, 5],
    [10, 20],
    [0x7ffffff0, 0x7ffffffa],
  ]);
  assert.throws(() => readLossList(Buffer.from([0x80, 0, 0, 1])), SrtPacketError);
});

test('sequence arithmetic wraps at 2^31', () => {
  assert.equal(seqAdd(0x7fffffff, 1), 0);
  assert.equal(seqAdd(0, -1), 0x7fffffff);
  assert.equal(seqDiff(2, 0x7ffffffe), 4);
  assert.equal(seqDiff(0x7ffffffe, 2), -4);
  assert.equal(seqDiff(100, 100), 0);
});

test('malformed packets are refused with SrtPacketError: short headers, short handshakes, extensions past the end', () => {
  assert.throws(() => readPacket(Buffer.alloc(15)), SrtPacketError);
  assert.throws(() => readHandshake(Buffer.alloc(47)), SrtPacketError);
  const hs = Buffer.alloc(48 + 4);
  hs.writeUInt16BE(SrtCommand.SID, 48);
  hs.writeUInt16BE(100, 50); // 100 words that are not there
  assert.throws(() => readHandshake(hs), SrtPacketError);
  assert.throws(() => readHsReq(Buffer.alloc(8)), SrtPacketError);
});
