import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStoredAck, storedAckSeq } from './nats.ts';
import { PendingAcks } from './pending-acks.ts';

const DATA = Buffer.from('frame');
const VALID = () => true;

function tracker(capacity = 4) {
  const log: string[] = [];
  const acks = new PendingAcks((ok, subject, onFailure, onStored, expired, seq) => {
    log.push(`${subject}:${ok ? 'stored' : expired ? 'expired' : 'refused'}`);
    if (ok) onStored?.(seq);
    else onFailure();
  }, capacity);
  return { acks, log };
}

test('acknowledgements settle their own message in any order and report the time since sending', () => {
  const { acks, log } = tracker();
  const a = acks.add(0, 'a', DATA, VALID, () => {});
  const b = acks.add(1, 'b', DATA, VALID, () => {});
  assert.equal(acks.settle(b, true, 5), 4);
  assert.equal(acks.settle(a, false, 7), 7);
  assert.deepEqual(log, ['b:stored', 'a:refused']);
  assert.equal(acks.size, 0);
});

test('a late or repeated acknowledgement is ignored', () => {
  const { acks, log } = tracker();
  const a = acks.add(0, 'a', DATA, VALID, () => {});
  acks.settle(a, true, 1);
  assert.equal(acks.settle(a, true, 2), -1);
  assert.equal(acks.settle(12345, true, 2), -1);
  assert.equal(acks.expire(10_000, 100), 0);
  assert.deepEqual(log, ['a:stored']);
});

test('messages without an acknowledgement expire oldest first, and only once they are older than the timeout', () => {
  const { acks, log } = tracker();
  let failures = 0;
  acks.add(0, 'a', DATA, VALID, () => failures++);
  const b = acks.add(50, 'b', DATA, VALID, () => failures++);
  acks.add(90, 'c', DATA, VALID, () => failures++);
  acks.settle(b, true, 60);
  assert.equal(acks.expire(120, 100), 1);
  assert.equal(acks.expire(200, 100), 1);
  assert.deepEqual(log, ['b:stored', 'a:expired', 'c:expired']);
  assert.equal(failures, 2);
  assert.equal(acks.size, 0);
});

test('the ring grows past its capacity while the oldest message waits, keeping every entry', () => {
  const { acks, log } = tracker(2);
  const ids = Array.from({ length: 100 }, (_, i) => acks.add(i, `m${i}`, DATA, VALID, () => {}));
  assert.equal(acks.size, 100);
  for (const id of ids.slice(1).reverse()) acks.settle(id, true, 200);
  acks.settle(ids[0]!, true, 200);
  assert.equal(log.length, 100);
  assert.equal(log.at(-1), 'm0:stored');
  assert.equal(log[0], 'm99:stored');
  // Ids keep counting after a wrap: the slots are reused.
  const next = acks.add(300, 'n', DATA, VALID, () => {});
  assert.equal(acks.settle(next, true, 301), 1);
});

test('unsettled messages are handed back oldest first with what they were sent with, and their late acks are ignored', () => {
  const settled: string[] = [];
  const acks = new PendingAcks((ok, subject) => settled.push(`${subject}:${ok}`), 4);
  const data = ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => Buffer.from(x));
  const ids = data.map((d, i) => acks.add(i, `s${i}`, d, VALID, () => {}));
  acks.settle(ids[1]!, true, 10);
  const back: string[] = [];
  assert.equal(
    acks.takeUnsettled((subject, d) => back.push(`${subject}=${d.toString()}`)),
    5,
  );
  assert.deepEqual(back, ['s0=a', 's2=c', 's3=d', 's4=e', 's5=f']);
  assert.equal(acks.size, 0);
  assert.equal(acks.settle(ids[3]!, true, 20), -1, 'a late ack of a handed-back message is ignored');
  assert.equal(acks.expire(1e9, 1), 0);
  assert.deepEqual(settled, ['s1:true']);
  const next = acks.add(30, 'n', DATA, VALID, () => {});
  assert.ok(acks.settle(next, true, 31) >= 0, 'ids go on after a hand-back');
});

test("a stored message's sequence in the frame stream reaches its callback, read from the ack without JSON", () => {
  const seqs: number[] = [];
  const acks = new PendingAcks((ok, _subject, _onFailure, onStored, _expired, seq) => ok && onStored?.(seq));
  const id = acks.add(
    0,
    'k',
    DATA,
    VALID,
    () => {},
    (seq) => seqs.push(seq),
  );
  const ack = Buffer.from('{"stream":"RELAY_FRAMES_3","seq":123456789,"duplicate":false}');
  acks.settle(id, isStoredAck(ack), 1, storedAckSeq(ack));
  assert.deepEqual(seqs, [123456789]);
  assert.equal(storedAckSeq(Buffer.from('{"stream":"S", "seq": 42}')), 42);
  assert.equal(storedAckSeq(Buffer.from('{"error":{"code":503}}')), 0);
  assert.equal(storedAckSeq(new Uint8Array(0)), 0);
});
