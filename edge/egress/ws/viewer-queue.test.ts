import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, newQueueState } from './viewer-queue.ts';

const limits = { skipBytes: 1000, maxBytes: 10_000, maxLagMs: 5000 };

test('a viewer keeping up is sent every fragment', () => {
  const s = newQueueState();
  for (let i = 0; i < 100; i++) assert.equal(decide(limits, s, 500, i % 30 === 0, i * 33), 'send');
  assert.equal(s.fellBehind, 0);
});

test('a viewer that falls behind skips to the next keyframe, counted once per episode', () => {
  const s = newQueueState();
  assert.equal(decide(limits, s, 1500, false, 0), 'fall-behind');
  assert.equal(decide(limits, s, 1400, false, 33), 'skip');
  assert.equal(decide(limits, s, 300, false, 66), 'skip', 'caught up, but not on a keyframe');
  assert.equal(decide(limits, s, 300, true, 100), 'send', 'resumes on a keyframe');
  assert.equal(decide(limits, s, 300, false, 133), 'send');
  assert.equal(s.fellBehind, 1);
  assert.equal(s.skippedFragments, 3);
});

test('a viewer that is still behind at the keyframe keeps skipping', () => {
  const s = newQueueState();
  decide(limits, s, 1500, false, 0);
  assert.equal(decide(limits, s, 900, true, 33), 'skip', 'above half the skip threshold');
});

test('a viewer that stays behind is disconnected', () => {
  const s = newQueueState();
  decide(limits, s, 1500, false, 0);
  assert.equal(decide(limits, s, 1500, false, 4000), 'skip');
  assert.equal(decide(limits, s, 1500, true, 5001), 'disconnect');
});

test('a viewer whose queue passes the hard cap is disconnected at once', () => {
  assert.equal(decide(limits, newQueueState(), 10_001, true, 0), 'disconnect');
});
