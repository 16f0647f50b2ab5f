import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { signPlaybackToken } from '../../server/core/auth/signatures.ts';
import { launchChromium, webRtcOrFallback } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'whep-demo-key-0123456789';
const PLAIN_KEY = 'whep-plain-key-0123456789';
const IDLE_KEY = 'whep-idle-key-0123456789';
// Playback tokens are required here: every page, socket and WHEP request below carries one.
const PLAY_SECRET = 'whep-playback-secret-bX7qL2v9ZtR4mW8nK3pS6y';
const token = (stream: string) => signPlaybackToken(PLAY_SECRET, stream, Math.floor(Date.now() / 1000) + 600);
const bearer = (stream: string) => ({ authorization: `Bearer ${token(stream)}` });

interface PlayerView {
  protocol?: string;
  fallback?: string;
  frames: number;
  height: number;
  ttffMs?: number;
  audioPackets: number;
  videoPackets: number;
  state: string;
}

/** What the page's player shows, and the WebRTC receive statistics when it plays over WebRTC. */
const view = (page: Page): Promise<PlayerView> =>
  page.evaluate(async () => {
    const p = (
      window as unknown as {
        relayPlayer: { protocol?: string; fallback?: string; ttffMs?: number; state: string; rtc?: RTCPeerConnection; framesDecoded(): number };
      }
    ).relayPlayer;
    let audioPackets = 0;
    let videoPackets = 0;
    if (p.rtc) {
      (await p.rtc.getStats()).forEach((r: { type: string; kind?: string; packetsReceived?: number }) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') audioPackets = r.packetsReceived ?? 0;
        if (r.type === 'inbound-rtp' && r.kind === 'video') videoPackets = r.packetsReceived ?? 0;
      });
    }
    return {
      protocol: p.protocol,
      fallback: p.fallback,
      frames: p.framesDecoded(),
      height: document.querySelector('video')!.videoHeight,
      ttffMs: p.ttffMs,
      audioPackets,
      videoPackets,
      state: p.state,
    };
  });

describe('WHEP playback on the edge, from an OBS-like RTMP source with B-frames', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let plain: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_STREAMS: JSON.stringify([
        { name: 'plain', key: PLAIN_KEY, transcode: false },
        { name: 'idle', key: IDLE_KEY },
      ]),
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_AUTH_PLAYBACK_SECRETS: JSON.stringify([PLAY_SECRET]),
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '240p', height: 240, videoKbps: 500, audioKbps: 64 }]),
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), bitrate: '1500k' }); // H.264 High with B-frames, AAC
    plain = startPublisher({ url: relay.rtmpUrl(PLAIN_KEY) });
    chromium = await launchChromium();
    await waitFor(
      'a WebRTC rendition on offer',
      async () => {
        const r = await fetch(`${relay.http}/api/streams/demo`).then(
          (x) => x.json() as Promise<{ renditions: { webrtc: boolean }[] }>,
          () => undefined,
        );
        return r?.renditions.some((x) => x.webrtc) ?? false;
      },
      30_000,
      250,
    );
    await waitFor(
      'the plain stream live',
      async () => {
        const r = await fetch(`${relay.http}/api/streams/plain`).then(
          (x) => x.json() as Promise<{ renditions: unknown[] }>,
          () => undefined,
        );
        return (r?.renditions.length ?? 0) > 0;
      },
      20_000,
      250,
    );
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await plain?.stop();
    await relay?.stop();
  });

  test('the player asked for WebRTC plays the transcoded rendition (no B-frames, Opus) over WHEP: frames and audio packets keep coming', async () => {
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/watch/demo?protocol=webrtc&token=${token('demo')}`);
    const first = await webRtcOrFallback(() => view(page));
    assert.equal(first.protocol, 'webrtc', `fell back: ${first.fallback}`);
    assert.equal(first.state, 'live');
    await new Promise((r) => setTimeout(r, 3000));
    const later = await view(page);
    assert.equal(later.height, 240, 'the WebRTC rendition');
    assert.ok(later.frames - first.frames > 60, `decoded ${later.frames - first.frames} frames in 3 s`);
    assert.ok(later.audioPackets - first.audioPackets > 100, `Opus packets in 3 s: ${later.audioPackets - first.audioPackets}`);
    assert.ok(later.ttffMs! < 3000, `first frame after ${later.ttffMs} ms`);
    await page.close();
  });

  test('several WHEP viewers at once, one leaving by DELETE: the others play on, and the edge counts them, their bytes and their time to first frame', async () => {
    const pages = await Promise.all(
      [0, 1, 2].map(async () => {
        const page = await chromium.browser.newPage();
        await page.goto(`${relay.http}/watch/demo?protocol=webrtc&token=${token('demo')}`);
        return page;
      }),
    );
    for (const page of pages) await waitFor('playing', async () => (await view(page)).protocol === 'webrtc', 15_000, 100);
    const metric = async () => Number(/^relay_edge_viewers\{protocol="webrtc"\} (\d+)/m.exec(await (await fetch(`${relay.http}/metrics`)).text())?.[1]);
    await waitFor(
      'three WebRTC viewers counted',
      async () => {
        const n = await metric();
        if (process.env.DEBUG_WHEP) process.stderr.write(`webrtc viewers ${n}\n`);
        return n === 3;
      },
      5000,
      100,
    );
    const location = await pages[0]!.evaluate(() =>
      (window as unknown as { relayPlayer: { events: [number, string][] } }).relayPlayer.events
        .map((e) => e[1])
        .find((e) => e.startsWith('whep session '))!
        .slice('whep session '.length),
    );
    assert.equal((await fetch(location, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(location, { method: 'DELETE' })).status, 404, 'gone');
    await waitFor('two left', async () => (await metric()) === 2, 5000, 100);
    const before = await Promise.all(pages.slice(1).map(view));
    await new Promise((r) => setTimeout(r, 2000));
    const after = await Promise.all(pages.slice(1).map(view));
    after.forEach((v, i) => assert.ok(v.frames - before[i]!.frames > 40, `viewer ${i + 2}: ${v.frames - before[i]!.frames} frames in 2 s`));
    const text = await (await fetch(`${relay.http}/metrics`)).text();
    const first = Number(/^relay_edge_time_to_first_frame_seconds_count\{protocol="webrtc"\} (\d+)/m.exec(text)?.[1]);
    assert.ok(first >= 3, `time to first frame observed for each WebRTC viewer (${first})`);
    const sum = Number(/^relay_edge_time_to_first_frame_seconds_sum\{protocol="webrtc"\} (\S+)/m.exec(text)?.[1]);
    assert.ok(sum / first > 0 && sum / first < 5, `mean WebRTC time to first frame ${(sum / first).toFixed(3)} s`);
    assert.ok(Number(/^relay_edge_bytes_out_total\{protocol="webrtc"\} (\S+)/m.exec(text)?.[1]) > 100_000, 'WebRTC bytes counted');
    for (const page of pages) await page.close();
  });

  test('a stream without a WebRTC rendition gets 409 over WHEP, and the player set to auto plays it over MSE instead', async () => {
    const offer = await fetch(`${relay.http}/whep/plain`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', ...bearer('plain') },
      body: await browserOffer(),
    });
    assert.equal(offer.status, 409);
    assert.equal(((await offer.json()) as { code: string }).code, 'WEBRTC_UNAVAILABLE');
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/watch/plain?protocol=auto&token=${token('plain')}`);
    await waitFor('frames over MSE', async () => (await view(page)).frames > 30, 20_000, 250);
    const v = await view(page);
    assert.equal(v.protocol, 'mse');
    assert.match(v.fallback ?? '', /no WebRTC rendition/);
    await page.close();
  });

  test('bad requests get a clear 4xx each, and WHEP viewers play on', async () => {
    const sdp = { 'content-type': 'application/sdp' };
    const post = (stream: string, body: string, headers: Record<string, string> = sdp, auth: Record<string, string> = bearer(stream)) =>
      fetch(`${relay.http}/whep/${stream}`, { method: 'POST', headers: { ...headers, ...auth }, body });
    const offer = await browserOffer();
    const cases: [string, Promise<Response>, number, string][] = [
      ['not SDP', post('demo', 'hello'), 400, 'SDP_INVALID'],
      ['no ICE credentials', post('demo', 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n'), 400, 'SDP_INVALID'],
      ['JSON', post('demo', '{}', { 'content-type': 'application/json' }), 415, 'CONTENT_TYPE_INVALID'],
      ['an oversized body', post('demo', `v=0\r\n${'a=x\r\n'.repeat(40_000)}`), 413, 'BODY_TOO_LARGE'],
      ['a bad stream name', post('a.b', offer), 400, 'STREAM_NAME_INVALID'],
      ['an unknown stream', post('nobody', offer), 404, 'STREAM_UNKNOWN'],
      ['a stream that is not live', post('idle', offer), 404, 'STREAM_OFFLINE'],
      ['no playback token', post('demo', offer, sdp, {}), 401, 'PLAYBACK_TOKEN_REQUIRED'],
      ['a token for another stream', post('demo', offer, sdp, bearer('plain')), 403, 'PLAYBACK_TOKEN_INVALID'],
    ];
    for (const [what, response, status, code] of cases) {
      const r = await response;
      assert.equal(r.status, status, what);
      assert.equal(((await r.json()) as { code: string }).code, code, what);
    }
    const patch = await fetch(`${relay.http}/whep/demo/00000000-0000-0000-0000-000000000000`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/trickle-ice-sdpfrag' },
      body: 'a=end-of-candidates\r\n',
    });
    assert.equal(patch.status, 405);
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/watch/demo?protocol=webrtc&token=${token('demo')}`);
    await waitFor('still plays, over WebRTC', async () => (await view(page)).frames > 30 && (await view(page)).protocol === 'webrtc', 15_000, 100);
    await page.close();
  });

  /** A real recvonly offer from Chromium, with candidates. */
  async function browserOffer(): Promise<string> {
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/healthz`);
    const sdp = await page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => setTimeout(r, 300));
      return pc.localDescription!.sdp;
    });
    await page.close();
    return sdp;
  }
});

describe('WHEP on the werift engine (webrtc.engine "werift": in Node, no simulcast)', { timeout: 120_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_WEBRTC_ENGINE: 'werift',
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '240p', height: 240, videoKbps: 500, audioKbps: 64 }]),
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), bitrate: '1500k' });
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  test('the player plays the WebRTC rendition over WHEP served by werift: frames and audio packets keep coming', async () => {
    assert.match(relay.output(), /"viewers":"werift".*"msg":"WebRTC engines"/, 'viewers on werift (publishers may be on mediasoup: webrtc.ingestEngine)');
    const page = await chromium.browser.newPage();
    await waitFor(
      'playing over WebRTC',
      async () => {
        await page.goto(`${relay.http}/watch/demo?protocol=webrtc`);
        return (await webRtcOrFallback(() => view(page))).protocol === 'webrtc';
      },
      60_000,
      0,
    );
    // WebRTC has the element (a picture of it shown: the element's size is WebRTC's), then a 3 s window.
    const first = await waitFor(
      'a WebRTC picture',
      async () => {
        const x = await view(page);
        return x.height > 0 ? x : undefined;
      },
      10_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 3000));
    const later = await view(page);
    assert.ok(later.frames - first.frames > 60, `decoded ${later.frames - first.frames} frames in 3 s`);
    assert.ok(later.audioPackets - first.audioPackets > 100, `Opus packets in 3 s: ${later.audioPackets - first.audioPackets}`);
    await page.close();
  });
});
