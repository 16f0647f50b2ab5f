import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { signPlaybackToken, signPublishKey } from '../../server/core/auth/signatures.ts';
import { FIXTURE_OBS_LIKE } from '../helpers/flv-file.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const SECRET_A = 'publish-A-Zb9VjYhQ2m0tq3kRfx1LwA8c';
const SECRET_B = 'publish-B-Tq8mZ2vLw4Rk9pX3nB7yCs01';
const PLAY = 'playback-bX7qL2v9ZtR4mW8nK3pS6y0123';
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const OFFER =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00\r\n';

describe('signed publish keys, rotation and playback tokens on every viewer path', { timeout: 180_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let dir: string;
  let keysFile: string;
  const publishers: Publisher[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'relay-auth-'));
    keysFile = join(dir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ publishSecrets: [SECRET_A] }));
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [{ name: 'static', key: 'static-stream-key-0123456789' }],
      auth: { publishSecrets: [], playbackSecrets: [PLAY], keysFile },
    });
  });

  after(async () => {
    await Promise.all(publishers.map((p) => p.stop()));
    await relay?.node.close();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const publishOnce = async (key: string) => {
    const p = startPublisher({ url: relay.rtmpUrl(key), file: FIXTURE_OBS_LIKE, loops: 1 });
    return { code: await p.exited, stderr: p.stderr() };
  };

  test('a stream no config names is published with a key signed for it and watched with a playback token', async () => {
    const publisher = startPublisher({ url: relay.rtmpUrl(signPublishKey(SECRET_A, 'signed-show', inAnHour())), file: FIXTURE_OBS_LIKE });
    publishers.push(publisher);
    const viewer = watch(`${relay.wsUrl('signed-show')}?token=${signPlaybackToken(PLAY, 'signed-show', inAnHour())}`);
    await waitFor('frames of the signed stream', () => viewer.record.fragments.length > 20, 20_000);
    assert.equal(viewer.record.closed, undefined);
    viewer.close();
    assert.equal(relay.logs().includes(SECRET_A), false, 'no secret is logged');
  });

  test('an expired signed key is refused with STREAM_KEY_EXPIRED, one signed with an unknown secret with STREAM_KEY_INVALID', async () => {
    const expired = await publishOnce(signPublishKey(SECRET_A, 'late', Math.floor(Date.now() / 1000) - 5));
    assert.notEqual(expired.code, 0);
    assert.match(expired.stderr, /STREAM_KEY_EXPIRED/);
    const forged = await publishOnce(signPublishKey('not-a-secret-of-this-relay-000000', 'late', inAnHour()));
    assert.notEqual(forged.code, 0);
    assert.match(forged.stderr, /STREAM_KEY_INVALID/);
  });

  test('a new secret in the keys file is taken up without a restart, and a dropped one stops working', async () => {
    const reloads = () => relay.logs().split('keys reloaded').length - 1;
    const before = reloads();
    await new Promise((r) => setTimeout(r, 1100)); // a write in the same millisecond as the last one would look unchanged
    writeFileSync(keysFile, JSON.stringify({ publishSecrets: [SECRET_B] }));
    await waitFor('the keys file to be re-read', () => reloads() > before, 5000);
    const old = await publishOnce(signPublishKey(SECRET_A, 'rotated', inAnHour()));
    assert.match(old.stderr, /STREAM_KEY_INVALID/, 'the dropped secret signs nothing now');
    const publisher = startPublisher({ url: relay.rtmpUrl(signPublishKey(SECRET_B, 'rotated', inAnHour())), file: FIXTURE_OBS_LIKE });
    publishers.push(publisher);
    const viewer = watch(`${relay.wsUrl('rotated')}?token=${signPlaybackToken(PLAY, 'rotated', inAnHour())}`);
    await waitFor('frames of the stream signed with the new secret', () => viewer.record.fragments.length > 10, 20_000);
    viewer.close();
    assert.equal(publishers[0]!.process.exitCode, null, 'a publisher already live is not cut by the rotation');
  });

  test('the watch page, the WebSocket and WHEP each refuse a missing, foreign or expired playback token with its code', async () => {
    const valid = signPlaybackToken(PLAY, 'static', inAnHour());
    const foreign = signPlaybackToken(PLAY, 'signed-show', inAnHour());
    const expired = signPlaybackToken(PLAY, 'static', Math.floor(Date.now() / 1000) - 1);
    const cases: [string | undefined, number, string, number][] = [
      [undefined, 401, 'PLAYBACK_TOKEN_REQUIRED', 4401],
      ['garbage', 403, 'PLAYBACK_TOKEN_INVALID', 4403],
      [foreign, 403, 'PLAYBACK_TOKEN_INVALID', 4403],
      [expired, 403, 'PLAYBACK_TOKEN_EXPIRED', 4403],
    ];
    for (const [token, status, code, closeCode] of cases) {
      const query = token ? `?token=${encodeURIComponent(token)}` : '';
      const page = await fetch(`${relay.http}/watch/static${query}`);
      assert.equal(page.status, status, `page ${code}`);
      assert.equal(((await page.json()) as { code: string }).code, code);

      const viewer = watch(`${relay.wsUrl('static')}${query}`);
      await waitFor(`the WebSocket refusal ${code}`, () => viewer.record.closed, 5000);
      assert.deepEqual(viewer.record.closed, { code: closeCode, reason: code });
      assert.equal(viewer.record.controls[0]?.code, code);
      assert.equal(viewer.record.fragments.length, 0);

      const headers: Record<string, string> = { 'content-type': 'application/sdp' };
      if (token) headers.authorization = `Bearer ${token}`;
      const whep = await fetch(`${relay.http}/whep/static`, { method: 'POST', headers, body: OFFER });
      assert.equal(whep.status, status, `WHEP ${code}`);
      assert.equal(((await whep.json()) as { code: string }).code, code);
    }
    const page = await fetch(`${relay.http}/watch/static?token=${encodeURIComponent(valid)}`);
    assert.equal(page.status, 200);
    const whep = await fetch(`${relay.http}/whep/static`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${valid}` },
      body: OFFER,
    });
    assert.equal(((await whep.json()) as { code: string }).code, 'STREAM_OFFLINE', 'a valid token gets past the check (the stream is offline)');
  });

  test('WHIP takes a signed key as its bearer token, for the stream it names only', async () => {
    const post = (stream: string, key: string) =>
      fetch(`${relay.http}/whip/${stream}`, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp', authorization: `Bearer ${key}` },
        body: 'not sdp',
      });
    const mine = await post('whip-show', signPublishKey(SECRET_B, 'whip-show', inAnHour()));
    assert.equal(((await mine.json()) as { code: string }).code, 'SDP_INVALID', 'the key was accepted; the body was not');
    const theirs = await post('whip-show', signPublishKey(SECRET_B, 'other-show', inAnHour()));
    assert.equal(theirs.status, 403);
    assert.equal(((await theirs.json()) as { code: string }).code, 'STREAM_KEY_INVALID');
  });
});
