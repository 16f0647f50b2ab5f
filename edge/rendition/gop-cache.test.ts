import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GopCache } from './gop-cache.ts';

const frag = (keyframe: boolean, size = 100) => ({ buffer: Buffer.alloc(size + 10), offset: 10, keyframe, receivedAt: 0, time: 0 });

test('holds the fragments from the last keyframe on', () => {
  const cache = new GopCache(10_000);
  cache.push(frag(false));
  assert.equal(cache.current.length, 0, 'nothing before the first keyframe');
  cache.push(frag(true));
  cache.push(frag(false));
  cache.push(frag(false));
  assert.equal(cache.current.length, 3);
  assert.equal(cache.current[0]!.keyframe, true);
  cache.push(frag(true));
  assert.equal(cache.current.length, 1, 'a new keyframe starts a new GOP');
});

test('shares the fragments it is given, no copies', () => {
  const cache = new GopCache(10_000);
  const f = frag(true);
  cache.push(f);
  assert.equal(cache.current[0], f);
});

test('a GOP larger than the cap is not cached until the next keyframe', () => {
  const cache = new GopCache(250);
  cache.push(frag(true));
  cache.push(frag(false));
  cache.push(frag(false));
  assert.equal(cache.current.length, 0);
  assert.deepEqual(cache.size, { fragments: 0, bytes: 0 });
  cache.push(frag(false));
  assert.equal(cache.current.length, 0);
  cache.push(frag(true));
  assert.equal(cache.current.length, 1);
});
