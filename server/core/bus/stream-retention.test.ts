import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetentionTrimmer } from './stream-retention.ts';

/** Keyframes every `gopMs`, each 50 sequences after the last, acknowledged at their time. */
function run(trimmer: RetentionTrimmer, untilMs: number, gopMs = 2000): void {
  for (let t = 0, seq = 1; t <= untilMs; t += gopMs, seq += 50) trimmer.keyframeStored(seq, t);
}

test('nothing is purged before the oldest keyframe is as old as the retention', () => {
  const purges: number[] = [];
  run(new RetentionTrimmer(10_000, (seq) => purges.push(seq)), 9_999, 1000);
  assert.deepEqual(purges, []);
});

test('purges up to the newest keyframe at least the retention old, so what stays starts at a keyframe', () => {
  const purges: number[] = [];
  const trimmer = new RetentionTrimmer(10_000, (seq) => purges.push(seq), 1000);
  run(trimmer, 10_000);
  // At 10 s the keyframe stored at 0 (seq 1) is exactly 10 s old: the cut, with nothing before it to drop.
  assert.deepEqual(purges, []);
  trimmer.keyframeStored(301, 12_000); // the keyframe of 2 s (seq 51) is now 10 s old
  assert.deepEqual(purges, [51]);
});

test('what is kept spans between the retention and the retention plus one GOP', () => {
  const purges: { at: number; before: number }[] = [];
  let now = 0;
  const trimmer = new RetentionTrimmer(6000, (before) => purges.push({ at: now, before }), 0);
  const storedAt = new Map<number, number>();
  for (let seq = 1; now <= 60_000; now += 2000, seq += 50) {
    storedAt.set(seq, now);
    trimmer.keyframeStored(seq, now);
  }
  assert.ok(purges.length > 20);
  for (const { at, before } of purges) {
    const age = at - storedAt.get(before)!;
    assert.ok(age >= 6000 && age < 6000 + 2000, `kept from a keyframe ${age} ms old`);
  }
});

test('purges at most once per interval, and never the same point twice', () => {
  const purges: number[] = [];
  const trimmer = new RetentionTrimmer(4000, (seq) => purges.push(seq), 5000);
  // An audio-only stream: every frame is a random access point, 50 a second.
  for (let i = 0, seq = 1; i < 50 * 30; i++, seq++) trimmer.keyframeStored(seq, i * 20);
  assert.ok(purges.length >= 5 && purges.length <= 6, `${purges.length} purges in 30 s`);
  for (let i = 1; i < purges.length; i++) assert.ok(purges[i]! > purges[i - 1]!);
});

test('a late acknowledgement of a keyframe already trimmed away changes nothing', () => {
  const purges: number[] = [];
  const trimmer = new RetentionTrimmer(1000, (seq) => purges.push(seq), 0);
  trimmer.keyframeStored(10, 0);
  trimmer.keyframeStored(20, 1000);
  trimmer.keyframeStored(30, 2000);
  assert.deepEqual(purges, [10, 20]);
  trimmer.keyframeStored(15, 2100);
  trimmer.keyframeStored(0, 2100); // no sequence in the ack
  trimmer.keyframeStored(40, 3000);
  assert.deepEqual(purges, [10, 20, 30]);
});

test('a purge that failed is asked again at the next keyframe', () => {
  const purges: number[] = [];
  const trimmer = new RetentionTrimmer(1000, (seq) => purges.push(seq), 0);
  trimmer.keyframeStored(10, 0);
  trimmer.keyframeStored(20, 1000);
  assert.deepEqual(purges, [10]);
  trimmer.failed(10);
  trimmer.keyframeStored(30, 1500);
  assert.deepEqual(purges, [10, 10]);
});

test("a keyframe that is the frame stream's first message (sequence 1) is never a purge bound: there is nothing before it", () => {
  const purges: number[] = [];
  const trimmer = new RetentionTrimmer(1000, (seq) => purges.push(seq), 0);
  trimmer.keyframeStored(1, 0);
  trimmer.keyframeStored(40, 1000);
  trimmer.keyframeStored(80, 2000);
  assert.deepEqual(purges, [40]);
});
