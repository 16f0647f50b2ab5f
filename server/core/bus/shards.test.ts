import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RelayError } from '../errors.ts';
import { BusLayout, fnv1a64, jumpHash } from './shards.ts';

const bus = { streamName: 'RELAY_FRAMES', subjectPrefix: 'relay' };
const names = Array.from({ length: 12_000 }, (_, i) => `stream-${i}`);

test('one shard is the single frame stream of before: RELAY_FRAMES binding relay.>, subjects as they were', () => {
  const layout = new BusLayout({ ...bus, shards: 1 });
  assert.deepEqual(layout.shards, [{ index: 0, jsStream: 'RELAY_FRAMES', prefix: 'relay', wildcard: 'relay.>' }]);
  assert.equal(layout.shardOf('anything').jsStream, 'RELAY_FRAMES');
  assert.equal(layout.subjects('cam', 'source').keyframe, 'relay.cam.source.k');
});

test('N shards are streamName_i binding prefix_s<i>.>: wildcards that overlap neither each other nor the single stream', () => {
  const layout = new BusLayout({ ...bus, shards: 12 });
  assert.equal(layout.shards.length, 12);
  assert.deepEqual(layout.shards[3], { index: 3, jsStream: 'RELAY_FRAMES_3', prefix: 'relay_s3', wildcard: 'relay_s3.>' });
  const prefixes = layout.shards.map((s) => s.prefix);
  assert.equal(new Set(prefixes).size, 12);
  // No shard's subject matches another's wildcard, nor the single stream's relay.>.
  for (const s of layout.shards) {
    const subject = `${s.prefix}.cam.source.k`;
    assert.equal(layout.shardOfSubject(subject), s);
    assert.ok(!subject.startsWith('relay.'));
  }
  assert.equal(layout.shardOfSubject('relay_s1x.cam.source.k'), undefined);
  assert.equal(layout.shardOfSubject('relay.cam.source.k'), undefined);
  const s = layout.shardOf('cam');
  assert.equal(layout.subjects('cam', '720p').all, `${s.prefix}.cam.720p.>`);
});

test('a stream maps to the same shard every time and in every process (a hash of its name alone)', () => {
  const a = new BusLayout({ ...bus, shards: 7 });
  const b = new BusLayout({ ...bus, shards: 7 });
  for (const name of names.slice(0, 500)) assert.equal(a.shardOf(name).index, b.shardOf(name).index);
  // Fixed values: a change of hash would move live streams between shards on a rolling upgrade.
  assert.deepEqual(
    ['cam', 'demo', 'stream-1', 'stream-2'].map((n) => a.shardOf(n).index),
    ['cam', 'demo', 'stream-1', 'stream-2'].map((n) => jumpHash(fnv1a64(n), 7)),
  );
  assert.equal(fnv1a64(''), 0xcbf29ce484222325n);
  assert.equal(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64('foobar'), 0x85944171f73967e8n);
});

test('streams spread evenly over the shards: 12,000 names over 8 within 6% of an even share', () => {
  const layout = new BusLayout({ ...bus, shards: 8 });
  const counts = new Array<number>(8).fill(0);
  for (const name of names) counts[layout.shardOf(name).index]!++;
  for (const c of counts) assert.ok(Math.abs(c - 1500) < 90, `counts ${counts.join(' ')}`);
});

test('growing from 8 shards to 9 moves only the streams the new shard takes, about one in nine', () => {
  const before = new BusLayout({ ...bus, shards: 8 });
  const after = new BusLayout({ ...bus, shards: 9 });
  let moved = 0;
  for (const name of names) {
    const from = before.shardOf(name).index;
    const to = after.shardOf(name).index;
    if (from === to) continue;
    moved++;
    assert.equal(to, 8, `${name} moved from ${from} to ${to}, not to the new shard`);
  }
  assert.ok(Math.abs(moved / names.length - 1 / 9) < 0.01, `moved ${moved}`);
});

test('a name that is not a stream name is refused with STREAM_NAME_INVALID, and shards below 1 are a range error', () => {
  const layout = new BusLayout({ ...bus, shards: 4 });
  assert.throws(
    () => layout.shardOf('a.b'),
    (err: unknown) => err instanceof RelayError && err.code === 'STREAM_NAME_INVALID',
  );
  assert.throws(() => new BusLayout({ ...bus, shards: 0 }), RangeError);
});
