import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { RelayError } from '../errors.ts';
import { AccessKeys } from './access-keys.ts';
import { signPlaybackToken, signPublishKey } from './signatures.ts';

const log = pino({ level: 'silent' });
const NOW = Date.UTC(2026, 10, 22);
const SOON = NOW / 1000 + 60;
const PUBLISH_A = 'pubA-Zb9VjYhQ2m0tq3kRfx1LwA8c-7734';
const PUBLISH_B = 'pubB-Tq8mZ2vLw4Rk9pX3nB7yCs-99120';
const PLAY = 'play-bX7qL2v9ZtR4mW8nK3pS6y-55555';
const code = (fn: () => unknown) => {
  try {
    fn();
    return 'none';
  } catch (err) {
    return (err as RelayError).code;
  }
};
const auth = (over: Partial<{ publishSecrets: string[]; playbackSecrets: string[]; keysFile: string }> = {}) => ({
  publishSecrets: [],
  playbackSecrets: [],
  keysFile: '',
  ...over,
});

test('a static key maps to its stream; a wrong key is STREAM_KEY_INVALID; keys are held as digests only', () => {
  const keys = new AccessKeys(
    {
      streams: [
        { name: 'demo', key: 'k'.repeat(20) },
        { name: 'talk', key: 't'.repeat(20) },
      ],
      auth: auth(),
    },
    log,
  );
  assert.equal(keys.streamForKey('k'.repeat(20)), 'demo');
  assert.equal(keys.streamForKey('t'.repeat(20)), 'talk');
  assert.equal(
    code(() => keys.streamForKey('k'.repeat(19))),
    'STREAM_KEY_INVALID',
  );
  assert.equal(
    code(() => keys.streamForKey('')),
    'STREAM_KEY_INVALID',
  );
  assert.equal(keys.isKnownStream('demo'), true);
  assert.equal(keys.isKnownStream('other'), false, 'without signing secrets only configured streams exist');
  assert.deepEqual(keys.names, ['demo', 'talk']);
  assert.equal(JSON.stringify(keys).includes('k'.repeat(20)), false);
});

test('a signed publish key opens the stream it names until it expires, and only with a current secret', () => {
  const keys = new AccessKeys({ streams: [], auth: auth({ publishSecrets: [PUBLISH_A] }) }, log, { now: () => NOW });
  assert.equal(keys.streamForKey(signPublishKey(PUBLISH_A, 'any-name', SOON)), 'any-name');
  assert.equal(keys.isKnownStream('any-name'), true, 'any valid name can be opened by a signed key');
  assert.equal(keys.isKnownStream('bad.name'), false);
  assert.equal(
    code(() => keys.streamForKey(signPublishKey(PUBLISH_A, 'show', NOW / 1000 - 1))),
    'STREAM_KEY_EXPIRED',
  );
  assert.equal(
    code(() => keys.streamForKey(signPublishKey(PUBLISH_B, 'show', SOON))),
    'STREAM_KEY_INVALID',
  );
  const unsigned = new AccessKeys({ streams: [], auth: auth() }, log, { now: () => NOW });
  assert.equal(
    code(() => unsigned.streamForKey(signPublishKey(PUBLISH_A, 'show', SOON))),
    'STREAM_KEY_INVALID',
    'no secrets: no signed keys',
  );
});

test('playback is open without playback secrets; with one, a token bound to the stream is required', () => {
  const open = new AccessKeys({ streams: [], auth: auth() }, log);
  assert.equal(
    code(() => open.checkPlayback('show', undefined)),
    'none',
  );
  const keys = new AccessKeys({ streams: [], auth: auth({ playbackSecrets: [PLAY] }) }, log, { now: () => NOW });
  assert.equal(
    code(() => keys.checkPlayback('show', undefined)),
    'PLAYBACK_TOKEN_REQUIRED',
  );
  assert.equal(
    code(() => keys.checkPlayback('show', 'nonsense')),
    'PLAYBACK_TOKEN_INVALID',
  );
  assert.equal(
    code(() => keys.checkPlayback('show', signPlaybackToken(PLAY, 'show', SOON))),
    'none',
  );
  assert.equal(
    code(() => keys.checkPlayback('other', signPlaybackToken(PLAY, 'show', SOON))),
    'PLAYBACK_TOKEN_INVALID',
  );
  assert.equal(
    code(() => keys.checkPlayback('show', signPlaybackToken(PLAY, 'show', NOW / 1000))),
    'PLAYBACK_TOKEN_EXPIRED',
  );
});

test('the keys file rotates keys and secrets on reload; a bad file is refused and the keys in use stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-keys-'));
  try {
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'old-key-0123456789' }], publishSecrets: [PUBLISH_A] }));
    const keys = new AccessKeys({ streams: [{ name: 'show', key: 'config-key-01234567', transcode: false }], auth: auth({ keysFile: file }) }, log, {
      now: () => NOW,
    });
    assert.equal(keys.streamForKey('old-key-0123456789'), 'show', "the file's entry replaces the config's");
    assert.equal(
      code(() => keys.streamForKey('config-key-01234567')),
      'STREAM_KEY_INVALID',
    );
    assert.equal(keys.entry('show')?.transcode, undefined);
    assert.equal(keys.signingSecret('publish'), PUBLISH_A);
    assert.equal(keys.signingSecret('play'), undefined);

    // Rotation: a new key, a second secret beside the first, then the first dropped.
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'new-key-0123456789' }], publishSecrets: [PUBLISH_B, PUBLISH_A] }));
    assert.equal(keys.reload(), true);
    assert.equal(
      code(() => keys.streamForKey('old-key-0123456789')),
      'STREAM_KEY_INVALID',
    );
    assert.equal(keys.streamForKey('new-key-0123456789'), 'show');
    assert.equal(keys.streamForKey(signPublishKey(PUBLISH_A, 'x', SOON)), 'x');
    assert.equal(keys.streamForKey(signPublishKey(PUBLISH_B, 'x', SOON)), 'x');
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'new-key-0123456789' }], publishSecrets: [PUBLISH_B] }));
    assert.equal(keys.reload(), true);
    assert.equal(
      code(() => keys.streamForKey(signPublishKey(PUBLISH_A, 'x', SOON))),
      'STREAM_KEY_INVALID',
    );

    for (const bad of [
      '{ not json',
      JSON.stringify({ streams: [{ name: 'a.b', key: 'new-key-0123456789' }] }),
      JSON.stringify({ publishSecrets: ['short'] }),
      JSON.stringify({ bogus: 1 }),
    ]) {
      writeFileSync(file, bad);
      assert.equal(keys.reload(), false, bad);
      assert.equal(keys.streamForKey('new-key-0123456789'), 'show', 'the keys in use stay');
    }
    rmSync(file);
    assert.equal(keys.reload(), false, 'a vanished file is refused too');
    assert.equal(keys.streamForKey(signPublishKey(PUBLISH_B, 'x', SOON)), 'x');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a keys file that changes on disk is picked up without a call', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-keys-'));
  const file = join(dir, 'keys.json');
  writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'old-key-0123456789' }] }));
  const keys = new AccessKeys({ streams: [], auth: auth({ keysFile: file }) }, log);
  const stop = keys.watch();
  try {
    await new Promise((r) => setTimeout(r, 1200)); // the watcher's first look is the baseline
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'new-key-0123456789-longer' }] }));
    const deadline = Date.now() + 5000;
    while (code(() => keys.streamForKey('new-key-0123456789-longer')) !== 'none' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(keys.streamForKey('new-key-0123456789-longer'), 'show');
  } finally {
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('in production a keys file with a weak secret is refused at start with CONFIG_INSECURE, and on reload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-keys-'));
  try {
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'change-me-stream-key-0123' }] }));
    assert.equal(
      code(() => new AccessKeys({ streams: [], auth: auth({ keysFile: file }) }, log, { production: true })),
      'CONFIG_INSECURE',
    );
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'Zb9VjYhQ2m0tq3kRfx1LwA8c' }] }));
    const keys = new AccessKeys({ streams: [], auth: auth({ keysFile: file }) }, log, { production: true });
    writeFileSync(file, JSON.stringify({ streams: [{ name: 'show', key: 'aaaaaaaaaaaaaaaaaaaa' }] }));
    assert.equal(keys.reload(), false);
    assert.equal(keys.streamForKey('Zb9VjYhQ2m0tq3kRfx1LwA8c'), 'show');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
