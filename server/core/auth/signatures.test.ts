import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePublishKey, signPlaybackToken, signPublishKey, verifyPlaybackToken, verifySigned } from './signatures.ts';

const SECRET = 'k'.repeat(16) + 'Q9x!v#2Lm0pZ7rTe';
const OTHER = 'o'.repeat(16) + 'A1b2C3d4E5f6G7h8';
const NOW = Date.UTC(2026, 10, 22);
const LATER = NOW / 1000 + 600;

test('a signed publish key names its stream and verifies with its secret until it expires', () => {
  const key = signPublishKey(SECRET, 'show', LATER);
  const parts = parsePublishKey(key);
  assert.ok(parts);
  assert.equal(parts.stream, 'show');
  assert.equal(parts.expiresAt, LATER);
  assert.equal(verifySigned([SECRET], 'publish', parts.stream, parts.expiresAt, parts.sig, NOW), 'valid');
  assert.equal(verifySigned([SECRET], 'publish', parts.stream, parts.expiresAt, parts.sig, LATER * 1000), 'expired');
  assert.equal(verifySigned([OTHER], 'publish', parts.stream, parts.expiresAt, parts.sig, NOW), 'invalid');
  assert.equal(verifySigned([OTHER, SECRET], 'publish', parts.stream, parts.expiresAt, parts.sig, NOW), 'valid', 'any current secret verifies: rotation');
});

test('a signed publish key is bound to its stream, expiry and purpose', () => {
  const parts = parsePublishKey(signPublishKey(SECRET, 'show', LATER))!;
  assert.equal(verifySigned([SECRET], 'publish', 'other', parts.expiresAt, parts.sig, NOW), 'invalid');
  assert.equal(verifySigned([SECRET], 'publish', 'show', parts.expiresAt + 3600, parts.sig, NOW), 'invalid', 'a later expiry is not the signed one');
  assert.equal(verifySigned([SECRET], 'play', 'show', parts.expiresAt, parts.sig, NOW), 'invalid', 'a publish signature is no playback token');
  const forged = parts.sig.slice(0, -1) + (parts.sig.endsWith('A') ? 'B' : 'A');
  assert.equal(verifySigned([SECRET], 'publish', 'show', parts.expiresAt, forged, NOW), 'invalid');
});

test('only keys shaped <stream>.<expiry>.<signature> parse as signed', () => {
  const sig = 'A'.repeat(43);
  for (const bad of [
    '',
    'show',
    'show.1.2',
    `show.12x.${sig}`,
    `sh.ow.1.${sig}`,
    `sh*ow.1.${sig}`,
    `show.1.${sig}A`,
    `show..${sig}`,
    `.1.${sig}`,
    `show.1234567890123.${sig}`,
  ]) {
    assert.equal(parsePublishKey(bad), undefined, bad);
  }
  assert.deepEqual(parsePublishKey(`show.1.${sig}`), { stream: 'show', expiresAt: 1, sig });
});

test('a playback token is bound to its stream and expires', () => {
  const token = signPlaybackToken(SECRET, 'show', LATER);
  assert.equal(verifyPlaybackToken([SECRET], 'show', token, NOW), 'valid');
  assert.equal(verifyPlaybackToken([SECRET], 'other', token, NOW), 'invalid');
  assert.equal(verifyPlaybackToken([SECRET], 'show', token, LATER * 1000 + 1), 'expired');
  assert.equal(verifyPlaybackToken([OTHER], 'show', token, NOW), 'invalid');
  const publishKeySig = parsePublishKey(signPublishKey(SECRET, 'show', LATER))!.sig;
  assert.equal(verifyPlaybackToken([SECRET], 'show', `${LATER}.${publishKeySig}`, NOW), 'invalid', 'a publish key is no playback token');
  for (const bad of ['', '.', 'x.y', `${LATER}`, `${LATER}.`, `-1.${'A'.repeat(43)}`, `${LATER}.${'A'.repeat(42)}`, '1'.repeat(5000)]) {
    assert.equal(verifyPlaybackToken([SECRET], 'show', bad, NOW), 'invalid', bad.slice(0, 40));
  }
});
