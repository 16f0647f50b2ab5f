import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateMeter } from './ingest-metrics.ts';

test('a rate meter reports bitrate and video frame rate over its last full window', () => {
  const meter = new RateMeter(0, 1000);
  // 30 video frames of 5,000 bytes and 47 audio frames of 300 bytes in one second.
  for (let i = 0; i < 30; i++) meter.add(5000, true, i * 33.4);
  for (let i = 0; i < 47; i++) meter.add(300, false, i * 21.3);
  assert.deepEqual(meter.read(1000), { bitsPerSecond: 0, framesPerSecond: 0 }, 'nothing until a window has passed');
  meter.add(5000, true, 1000);
  const { bitsPerSecond, framesPerSecond } = meter.read(1000);
  assert.equal(framesPerSecond, 31);
  assert.equal(bitsPerSecond, (31 * 5000 + 47 * 300) * 8);
});

test('a rate meter reads zero once its publisher has been silent for two windows', () => {
  const meter = new RateMeter(0, 1000);
  for (let t = 0; t <= 1000; t += 100) meter.add(1000, true, t);
  assert.ok(meter.read(1500).framesPerSecond > 0);
  assert.deepEqual(meter.read(3100), { bitsPerSecond: 0, framesPerSecond: 0 });
});
