import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyFlag, newKeyingMaterial, SrtDecryptor, writeKeyingMaterial } from './srt-crypto.ts';
import { ControlType, readLossList, readPacket, SrtCommand, seqAdd, type ControlPacket, type DataPacket } from './srt-packet.ts';
import { SrtReceiver, type ReceiverOptions } from './srt-receiver.ts';

const LATENCY = 120;

/** A receiver whose clock starts at 0, with the sender's timestamp 0 at our 0, recording what it sends and delivers. */
function receiver(options: Partial<ReceiverOptions> = {}) {
  const sent: ControlPacket[] = [];
  const delivered: string[] = [];
  const lost: number[] = [];
  const r = new SrtReceiver({
    isn: 1000,
    latencyMs: LATENCY,
    peerSocketId: 7,
    startTime: 0,
    peerStart: 0,
    send: (b) => {
      const p = readPacket(b);
      if (p.kind !== 'control') throw new Error('the receiver sent a data packet');
      sent.push(p);
    },
    deliver: (payload) => delivered.push(payload.toString()),
    lost: (n) => lost.push(n),
    ...options,
  });
  return { r, sent, delivered, lost, naks: () => sent.filter((p) => p.type === ControlType.NAK).map((p) => readLossList(p.body)) };
}

/** Packet `seq`, sent at `ms` on the sender's clock. */
function data(seq: number, ms: number, extra: Partial<DataPacket> = {}): DataPacket {
  return {
    kind: 'data',
    seq,
    position: 3,
    inOrder: false,
    key: 0,
    retransmitted: false,
    messageNumber: 1,
    timestamp: ms * 1000,
    destination: 1,
    payload: Buffer.from(`p${seq}`),
    ...extra,
  };
}

test('packets are delivered in order at their send time plus the latency, not before', () => {
  const { r, delivered } = receiver();
  r.data(data(1000, 0), 1);
  r.data(data(1001, 10), 11);
  r.tick(LATENCY - 1);
  assert.deepEqual(delivered, []);
  r.tick(LATENCY);
  assert.deepEqual(delivered, ['p1000']);
  r.tick(LATENCY + 10);
  assert.deepEqual(delivered, ['p1000', 'p1001']);
});

test('a gap is reported at once in a NAK, again each NAK interval while it lasts, and a retransmission fills it in order', () => {
  const { r, delivered, naks, lost } = receiver({ latencyMs: 1000 });
  r.data(data(1000, 0), 0);
  r.data(data(1003, 3), 3); // 1001 and 1002 missing
  assert.deepEqual(naks(), [[[1001, 1002]]]);
  r.tick(10);
  assert.equal(naks().length, 1, 'not again before the NAK interval');
  r.tick(3 + 80); // the interval: max(20 ms, (RTT + 4 RTTVar) / 2) = 150 ms with the initial 100/50 ms
  r.tick(3 + 160);
  assert.deepEqual(naks().at(-1), [[1001, 1002]], 'reported again');
  r.data(data(1001, 1, { retransmitted: true }), 50);
  r.data(data(1002, 2, { retransmitted: true }), 51);
  r.tick(1000 + 3);
  assert.deepEqual(delivered, ['p1000', 'p1001', 'p1002', 'p1003']);
  assert.deepEqual(lost, []);
  assert.equal(r.stats.lost, 2);
  assert.equal(r.stats.retransmitted, 2);
});

test('a packet still missing when the next one is due is given up: counted, reported, and delivery goes on', () => {
  const { r, delivered, lost } = receiver();
  r.data(data(1000, 0), 0);
  r.data(data(1002, 20), 20);
  r.tick(LATENCY);
  assert.deepEqual(delivered, ['p1000']);
  r.tick(LATENCY + 19);
  assert.deepEqual(delivered, ['p1000'], 'still waiting for 1001');
  r.tick(LATENCY + 20);
  assert.deepEqual(delivered, ['p1000', 'p1002']);
  assert.deepEqual(lost, [1]);
  assert.equal(r.stats.dropped, 1);
  r.data(data(1001, 10, { retransmitted: true }), LATENCY + 30);
  assert.equal(r.stats.duplicates, 1, 'too late: ignored');
  r.tick(LATENCY + 400);
  const before = r.stats.naksSent;
  r.tick(LATENCY + 800);
  assert.equal(r.stats.naksSent, before, 'a packet given up is not asked for again');
});

test('ACK every 10 ms carries the first missing sequence; an ACKACK gives the round-trip time', () => {
  const { r, sent } = receiver();
  r.data(data(1000, 0), 0);
  r.data(data(1001, 1), 1);
  r.data(data(1003, 3), 3);
  r.tick(10);
  const acks = sent.filter((p) => p.type === ControlType.ACK);
  assert.equal(acks.length, 1);
  assert.equal(acks[0]!.body.readUInt32BE(0), 1002, 'everything before 1002 came');
  assert.ok(acks[0]!.body.readUInt32BE(12) > 8000, 'the free buffer (flow window)');
  r.tick(15);
  assert.equal(sent.filter((p) => p.type === ControlType.ACK).length, 1, 'no new ACK when nothing new came');
  const ackack = (info: number, at: number) =>
    r.control({ kind: 'control', type: ControlType.ACKACK, subtype: 0, info, timestamp: 0, destination: 1, body: Buffer.alloc(0) }, at);
  ackack(acks[0]!.info, 10 + 30);
  assert.deepEqual([r.stats.rttUs, r.stats.rttVarUs], [30_000, 15_000], 'the first sample replaces the initial guess');
  ackack(acks[0]!.info, 10 + 90);
  assert.equal(r.stats.rttUs, 30_000, 'an ACKACK counts once');
  r.data(data(1002, 2), 20);
  r.tick(25);
  const second = sent.filter((p) => p.type === ControlType.ACK)[1]!;
  assert.equal(second.body.readUInt32BE(0), 1004);
  ackack(second.info, 25 + 10);
  assert.deepEqual([r.stats.rttUs, r.stats.rttVarUs], [(7 * 30_000 + 10_000) / 8, (3 * 15_000 + 20_000) / 4], 'then smoothed (RFC 6298)');
});

test('sequence numbers and the microsecond timestamps wrap without a hiccup', () => {
  const start = 0x7ffffffe;
  const t0 = Math.floor(2 ** 32 / 1000) - 5; // 5 ms before the 32-bit microsecond clock wraps
  const { r, delivered, lost } = receiver({ isn: start, peerStart: -t0 });
  // The sender's timestamps wrap after the third packet: they are small again, and still later than the first.
  for (let i = 0; i < 6; i++) r.data(data(seqAdd(start, i), 0, { timestamp: ((t0 + i * 2) * 1000) % 2 ** 32 }), i * 2);
  r.tick(LATENCY + 5);
  assert.deepEqual(delivered, ['p2147483646', 'p2147483647', 'p0'], 'each at its time, across the wrap');
  r.tick(LATENCY + 20);
  assert.deepEqual(delivered, ['p2147483646', 'p2147483647', 'p0', 'p1', 'p2', 'p3']);
  assert.deepEqual(lost, []);
});

test('a drop request stops the NAKs for what the sender gave up', () => {
  const { r, naks } = receiver();
  r.data(data(1000, 0), 0);
  r.data(data(1005, 5), 5);
  const body = Buffer.alloc(8);
  body.writeUInt32BE(1001, 0);
  body.writeUInt32BE(1004, 4);
  r.control({ kind: 'control', type: ControlType.DROPREQ, subtype: 0, info: 0, timestamp: 0, destination: 1, body }, 6);
  const before = naks().length;
  r.tick(500);
  assert.equal(naks().length, before);
  assert.equal(r.stats.dropped, 4, 'given up at their time');
});

test('a SHUTDOWN ends the connection, and drain() delivers what was waiting, in order', () => {
  const { r, delivered } = receiver();
  r.data(data(1000, 0), 0);
  r.data(data(1001, 1), 1);
  assert.equal(
    r.control({ kind: 'control', type: ControlType.SHUTDOWN, subtype: 0, info: 0, timestamp: 0, destination: 1, body: Buffer.alloc(4) }, 2),
    'shutdown',
  );
  r.drain();
  assert.deepEqual(delivered, ['p1000', 'p1001']);
});

test('encrypted packets are decrypted with the key they name; a refreshed KMREQ is answered with the same message and its key used', () => {
  const passphrase = 'a long enough passphrase';
  const first = newKeyingMaterial(16);
  const decryptor = new SrtDecryptor(first);
  const { r, delivered, sent } = receiver({ decryptor, passphrase });
  const encrypted = (seq: number, key: number) => decryptor.encrypt(seq, key, Buffer.from(`p${seq}`))!;
  r.data(data(1000, 0, { key: KeyFlag.EVEN, payload: encrypted(1000, KeyFlag.EVEN) }), 0);
  const odd = { keys: KeyFlag.ODD, salt: first.salt, odd: Buffer.alloc(16, 3) };
  const km = writeKeyingMaterial(odd, passphrase);
  r.control({ kind: 'control', type: ControlType.USER, subtype: SrtCommand.KMREQ, info: 0, timestamp: 0, destination: 1, body: km }, 1);
  const kmrsp = sent.find((p) => p.type === ControlType.USER && p.subtype === SrtCommand.KMRSP);
  assert.ok(kmrsp?.body.equals(km), 'KMRSP echoes the KMREQ');
  r.data(data(1001, 1, { key: KeyFlag.ODD, payload: encrypted(1001, KeyFlag.ODD) }), 2);
  r.data(data(1002, 2, { key: KeyFlag.EVEN, payload: Buffer.from('junk') }), 3);
  r.tick(LATENCY + 10);
  assert.deepEqual(delivered.slice(0, 2), ['p1000', 'p1001']);
  const bad = writeKeyingMaterial(odd, 'another passphrase!');
  r.control({ kind: 'control', type: ControlType.USER, subtype: SrtCommand.KMREQ, info: 0, timestamp: 0, destination: 1, body: bad }, 20);
  assert.equal(
    sent
      .filter((p) => p.subtype === SrtCommand.KMRSP)
      .at(-1)!
      .body.readUInt32BE(0),
    4,
    'BADSECRET',
  );
});

test('a keepalive goes out after a second with nothing else sent; duplicates and packets beyond the buffer are ignored', () => {
  const { r, sent, delivered } = receiver({ bufferPackets: 16 });
  r.data(data(1000, 0), 0);
  r.data(data(1000, 0), 1);
  r.data(data(1000 + 16, 0), 2);
  assert.equal(r.stats.duplicates, 2);
  r.tick(10);
  r.tick(1011);
  assert.ok(sent.some((p) => p.type === ControlType.KEEPALIVE));
  assert.deepEqual(delivered, ['p1000']);
  assert.throws(() => receiver({ bufferPackets: 1000 }), RangeError);
});

test("the time base follows the sender's clock: 1000 ppm fast for a minute, each packet still waits the latency, within 10 ms", () => {
  let now = 0;
  const arrivals = new Map<string, number>();
  const waits: number[] = [];
  const r = new SrtReceiver({
    isn: 0,
    latencyMs: LATENCY,
    peerSocketId: 7,
    startTime: 0,
    peerStart: 0,
    send: () => {},
    deliver: (payload) => waits.push(now - arrivals.get(payload.toString())!),
    lost: () => {},
  });
  for (let i = 0; i < 60_000; i++, now++) {
    const packet = data(i, 0, { timestamp: Math.round(i * 1001) % 2 ** 32 }); // the sender's clock runs 0.1% fast
    arrivals.set(`p${i}`, now);
    r.data(packet, now);
    r.tick(now);
  }
  const late = waits.slice(-1000);
  assert.ok(
    late.every((w) => Math.abs(w - LATENCY) <= 10),
    `the last second's waits: ${Math.min(...late)}-${Math.max(...late)} ms`,
  );
  assert.ok(r.stats.driftMs < -50 && r.stats.driftMs > -70, `the base moved ${r.stats.driftMs} ms`);
});
