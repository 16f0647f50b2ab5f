import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { FAKE_MEDIA_ARGS, launchChromium, webRtcOrFallback } from '../helpers/browser.ts';
import { whipPublish } from '../helpers/whip-browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'whip-publish-key-0123456789';
/** A well-formed offer whose only codec is VP8 (the relay takes H.264 and Opus). */
const VP8_ONLY = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 ' + Array.from({ length: 32 }, () => 'AB').join(':'),
  'a=setup:actpass',
  'a=mid:0',
  'a=sendonly',
  'a=rtcp-mux',
  'a=rtpmap:96 VP8/90000',
  '',
].join('\r\n');

describe('WHIP ingest from Chromium', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let publisherPage: Page;
  let location: string;

  before(async () => {
    relay = await startRelay('all', { RELAY_DEMO_KEY: KEY, RELAY_INGEST_TAKEOVER: 'false' });
    chromium = await launchChromium(FAKE_MEDIA_ARGS);
    publisherPage = await chromium.browser.newPage();
    await publisherPage.goto(`${relay.http}/healthz`);
  });

  after(async () => {
    await chromium?.close();
    await relay?.stop();
  });

  test('Chromium publishes its fake camera and microphone: 201 with an answer and a session Location', async () => {
    const res = await whipPublish(publisherPage, `${relay.http}/whip/demo`, KEY);
    assert.equal(res.status, 201, res.body);
    assert.match(
      relay.output(),
      /"publishers":"mediasoup".*"msg":"WebRTC engines"/,
      "publishers on mediasoup's workers (the default where the worker is built)",
    );
    assert.match(res.body, /^v=0/);
    assert.match(res.location!, /^\/whip\/demo\/[0-9a-f-]{36}$/);
    location = res.location!;
    assert.match(relay.output(), /Service "WHIP"\n {2}Server: +http:\/\/[^\s]+\/whip\/demo/, 'the start banner says where OBS 30+ publishes by WHIP');
    await waitFor(
      'the peer connection up',
      () => publisherPage.evaluate(() => (window as unknown as { pc: RTCPeerConnection }).pc.connectionState === 'connected'),
      10_000,
      100,
    );
  });

  test('a browser publisher, whose encoder makes keyframes only when asked, is asked every 2 s (webrtc.maxKeyframeIntervalMs) with no viewer: keyframe requests keep coming, no more often', async () => {
    // What the publisher's encoder reports: the keyframe requests (PLI) it got, and the keyframes it made.
    const encoder = () =>
      publisherPage.evaluate(async () => {
        const out = { plis: 0, keyframes: 0 };
        (await (window as unknown as { pc: RTCPeerConnection }).pc.getStats()).forEach(
          (r: { type: string; kind?: string; pliCount?: number; keyFramesEncoded?: number }) => {
            if (r.type !== 'outbound-rtp' || r.kind !== 'video') return;
            out.plis = r.pliCount ?? 0;
            out.keyframes = r.keyFramesEncoded ?? 0;
          },
        );
        return out;
      });
    const requestsOver = (n: number) => async () => {
      const x = await encoder();
      return x.plis > n ? x : undefined;
    };
    // From just after a request (those of the first second, while the stream starts, go by), two more.
    const before = await waitFor('a keyframe request', requestsOver((await encoder()).plis), 10_000, 50);
    const since = Date.now();
    const after = await waitFor('two more keyframe requests', requestsOver(before.plis + 1), 15_000, 50);
    const spanS = (Date.now() - since) / 1000;
    assert.ok(spanS > 3, `one request per 2 s without a keyframe, not more: 2 in ${spanS} s`);
    // Each request is answered by a keyframe a frame or so later: the second may not be counted yet.
    const made = await waitFor(
      'a keyframe for each request',
      async () => ((await encoder()).keyframes >= before.keyframes + 2 ? true : undefined),
      2000,
      50,
    ).catch(() => false);
    assert.ok(made, `keyframes made: ${(await encoder()).keyframes - before.keyframes} for ${after.plis - before.plis} requests`);
  });

  test('an MSE viewer plays the WHIP stream: H.264 and Opus in fMP4, decoded frames rising', async () => {
    const viewer = await chromium.browser.newPage();
    await viewer.goto(`${relay.http}/watch/demo`);
    const frames = () => viewer.evaluate(() => (window as unknown as { relayPlayer: { framesDecoded(): number } }).relayPlayer.framesDecoded());
    await waitFor('frames decoded', async () => (await frames()) > 30, 20_000, 250);
    const a = await frames();
    await new Promise((r) => setTimeout(r, 2000));
    const b = await frames();
    assert.ok(b - a > 30, `decoded ${b - a} frames in 2 s`);
    const info = await viewer.$eval('#info', (e) => e.textContent);
    assert.match(info ?? '', /opus/, `the page names the codecs: ${info}`);
    await viewer.close();
  });

  test('a WHEP viewer plays the WHIP stream from its own frames (WebRTC-safe already): decoded frames rising, Opus packets arriving', async () => {
    const viewer = await chromium.browser.newPage();
    await viewer.goto(`${relay.http}/watch/demo?protocol=webrtc`);
    const look = () =>
      viewer.evaluate(async () => {
        const p = (window as unknown as { relayPlayer: { protocol?: string; fallback?: string; rtc?: RTCPeerConnection; framesDecoded(): number } })
          .relayPlayer;
        let audio = 0;
        (await p.rtc?.getStats())?.forEach((r: { type: string; kind?: string; packetsReceived?: number }) => {
          if (r.type === 'inbound-rtp' && r.kind === 'audio') audio = r.packetsReceived ?? 0;
        });
        return { protocol: p.protocol, fallback: p.fallback, frames: p.framesDecoded(), audio };
      });
    const a = await webRtcOrFallback(look);
    assert.equal(a.protocol, 'webrtc', `fell back: ${a.fallback}`);
    await new Promise((r) => setTimeout(r, 2000));
    const b = await look();
    assert.ok(b.frames - a.frames > 30, `decoded ${b.frames - a.frames} frames in 2 s`);
    assert.ok(b.audio - a.audio > 50, `Opus packets in 2 s: ${b.audio - a.audio}`);
    await viewer.close();
  });

  test('with takeover off, a second WHIP publisher of the live stream gets 409, other bad requests their own 4xx, and the stream plays on', async () => {
    const second = await chromium.browser.newPage();
    await second.goto(`${relay.http}/healthz`);
    const res = await whipPublish(second, `${relay.http}/whip/demo`, KEY);
    assert.equal(res.status, 409, res.body);
    assert.equal(JSON.parse(res.body).code, 'STREAM_ALREADY_PUBLISHING');
    await second.close();
    const post = (body: string, headers: Record<string, string>) => fetch(`${relay.http}/whip/demo`, { method: 'POST', headers, body });
    const sdp = { 'content-type': 'application/sdp' };
    const cases: [string, Promise<Response>, number, string][] = [
      ['no token', post('v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n', sdp), 401, 'AUTH_REQUIRED'],
      ['a wrong key', post('v=0\r\n', { ...sdp, authorization: 'Bearer wrong-key-0123456789abc' }), 403, 'STREAM_KEY_INVALID'],
      ['not SDP', post('hello', { ...sdp, authorization: `Bearer ${KEY}` }), 400, 'SDP_INVALID'],
      ['a bogus offer', post('v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=nonsense\r\n', { ...sdp, authorization: `Bearer ${KEY}` }), 400, 'SDP_INVALID'],
      ['only unsupported codecs', post(VP8_ONLY, { ...sdp, authorization: `Bearer ${KEY}` }), 415, 'CODEC_UNSUPPORTED'],
      ['JSON', post('{}', { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }), 415, 'CONTENT_TYPE_INVALID'],
      ['an oversized body', post(`v=0\r\n${'a=x\r\n'.repeat(40_000)}`, { ...sdp, authorization: `Bearer ${KEY}` }), 413, 'BODY_TOO_LARGE'],
      [
        'a bad stream name',
        fetch(`${relay.http}/whip/a.b`, { method: 'POST', headers: { ...sdp, authorization: `Bearer ${KEY}` }, body: 'v=0\r\n' }),
        400,
        'STREAM_NAME_INVALID',
      ],
    ];
    for (const [what, response, status, code] of cases) {
      const r = await response;
      assert.equal(r.status, status, what);
      if (code) assert.equal(((await r.json()) as { code: string }).code, code, what);
    }
    const patch = await fetch(`${relay.http}${location}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/trickle-ice-sdpfrag' },
      body: 'a=end-of-candidates\r\n',
    });
    assert.equal(patch.status, 405);
    assert.match(patch.headers.get('allow') ?? '', /DELETE/);
    assert.equal((await fetch(`${relay.http}/whip/demo/00000000-0000-0000-0000-000000000000`, { method: 'DELETE' })).status, 404);
    // Still live.
    const catalog = (await (await fetch(`${relay.http}/api/streams/demo`)).json()) as { renditions: { name: string; audio: string[]; webrtc: boolean }[] };
    assert.deepEqual(
      catalog.renditions.map((r) => [r.name, r.audio, r.webrtc]),
      [['source', ['opus'], true]],
    );
  });

  test('DELETE on the session ends the stream', async () => {
    const res = await fetch(`${relay.http}${location}`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    await waitFor(
      'the stream ended',
      async () => {
        const c = (await (await fetch(`${relay.http}/api/streams/demo`)).json()) as { renditions: unknown[] };
        return c.renditions.length === 0;
      },
      10_000,
      250,
    );
  });
});
