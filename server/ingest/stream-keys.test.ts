import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamKeys } from './stream-keys.ts';

test('a key maps to its public stream name; a wrong key to nothing', () => {
  const keys = new StreamKeys([{ name: 'demo', key: 'k'.repeat(20) }, { name: 'talk', key: 't'.repeat(20) }]);
  assert.equal(keys.streamFor('k'.repeat(20)), 'demo');
  assert.equal(keys.streamFor('t'.repeat(20)), 'talk');
  assert.equal(keys.streamFor('k'.repeat(19)), undefined);
  assert.equal(keys.streamFor(''), undefined);
  assert.equal(keys.has('demo'), true);
  assert.equal(keys.has('k'.repeat(20)), false, 'keys are not names');
  assert.deepEqual(keys.names, ['demo', 'talk']);
  assert.equal(JSON.stringify(keys).includes('k'.repeat(20)), false, 'keys are held as digests only');
});
