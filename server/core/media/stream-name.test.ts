import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RelayError } from '../errors.ts';
import { StreamSubjects } from '../bus/subjects.ts';
import { assertStreamName, isStreamName } from './stream-name.ts';

test('stream names of letters, digits, underscore and dash up to 64 characters are accepted', () => {
  for (const name of ['demo', 'a', 'Stream_01-b', 'x'.repeat(64)]) assert.equal(isStreamName(name), true, name);
});

test('dots, wildcards, spaces, unicode, empty and overlong names are refused with STREAM_NAME_INVALID', () => {
  for (const name of ['', 'a.b', '*', '>', 'a*', 'live.>', 'a b', 'café', 'ストリーム', 'x'.repeat(65), 'a\n', '../x', 'a/b']) {
    assert.equal(isStreamName(name), false, JSON.stringify(name));
    assert.throws(
      () => assertStreamName(name),
      (e: RelayError) => e.code === 'STREAM_NAME_INVALID',
    );
  }
  assert.throws(
    () => assertStreamName(undefined),
    (e: RelayError) => e.code === 'STREAM_NAME_INVALID',
  );
});

test('a bad stream name can never become a NATS subject', () => {
  for (const name of ['a.b', '*', '>', 'a b']) {
    assert.throws(
      () => new StreamSubjects('relay', name),
      (e: RelayError) => e.code === 'STREAM_NAME_INVALID',
    );
  }
  assert.throws(
    () => new StreamSubjects('relay', 'demo', 'Source.*'),
    (e: RelayError) => e.code === 'STREAM_NAME_INVALID',
  );
});

test('subjects put the frame kind in the last token', () => {
  const s = new StreamSubjects('relay', 'demo');
  assert.equal(s.keyframe, 'relay.demo.source.k');
  assert.equal(s.delta, 'relay.demo.source.d');
  assert.equal(s.audio, 'relay.demo.source.a');
  assert.equal(s.part, 'relay.demo.source.p');
  assert.equal(s.end, 'relay.demo.source.e');
  assert.equal(s.all, 'relay.demo.source.>');
});
