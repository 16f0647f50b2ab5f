import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium, webRtcOrFallback } from '../helpers/browser.ts';
import { findLog } from '../helpers/logs.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { answerThrough, startUdpShaper, type UdpShaper } from '../helpers/udp-shaper.ts';

const KEY = 'whep-ms-demo-key-0123456789';

interface RtcView {
  protocol?: string;
  fallback?: string;
  /** WHEP start -> the first picture shown (the WebSocket's, during a fast start), and -> WebRTC's own first picture. */
  ttffMs?: number;
  webrtcFirstFrameMs?: number;
  /** The player's recent connection events. */
  events: string[];
  /** How far behind live the picture is, by the player's own reckoning. */
  latencyMs?: number;
  whepReconnects: number;
  /** Decoded frames, on the page's video element (as the player counts them). */
  frames: number;
  /** The picture's height as WebRTC decodes it now (the simulcast layer). */
  height: number;
  audioPackets: number;
  freezeS: number;
  lost: number;
}

const view = (page: Page): Promise<RtcView> =>
  page.evaluate(async () => {
    const p = (
      window as unknown as {
        relayPlayer: {
          protocol?: string;
          fallback?: string;
          ttffMs?: number;
          webrtcFirstFrameMs?: number;
          events: [number, string][];
          latencyMs?: number;
          whepReconnects: number;
          rtc?: RTCPeerConnection;
          framesDecoded(): number;
        };
      }
    ).relayPlayer;
    const out = {
      protocol: p.protocol,
      fallback: p.fallback,
      ttffMs: p.ttffMs,
      webrtcFirstFrameMs: p.webrtcFirstFrameMs,
      events: p.events.map(([, what]) => what),
      latencyMs: p.latencyMs,
      whepReconnects: p.whepReconnects,
      frames: p.framesDecoded(),
      height: 0,
      audioPackets: 0,
      freezeS: 0,
      lost: 0,
    };
    if (p.rtc) {
      (await p.rtc.getStats()).forEach(
        (r: { type: string; kind?: string; frameHeight?: number; packetsReceived?: number; totalFreezesDuration?: number; packetsLost?: number }) => {
          if (r.type !== 'inbound-rtp') return;
          if (r.kind === 'audio') out.audioPackets = r.packetsReceived ?? 0;
          if (r.kind === 'video') {
            out.height = r.frameHeight ?? 0;
            out.freezeS = r.totalFreezesDuration ?? 0;
            out.lost = r.packetsLost ?? 0;
          }
        },
      );
    }
    return out;
  });

/** The page's WHEP viewer reaches the worker through the shaper: its answer's candidate is rewritten on the way. */
const throughShaper = (page: Page, shaper: UdpShaper) =>
  page.route('**/whep/demo*', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const response = await route.fetch();
    const through = answerThrough(await response.text(), shaper.port);
    shaper.target = through.target;
    await route.fulfill({ response, body: through.answer });
  });

/** The mediasoup workers the relay runs (its child processes). */
const workerPids = (relay: RelayProcess): number[] => {
  try {
    return execFileSync('pgrep', ['-P', String(relay.child.pid), '-f', 'mediasoup-worker'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
};

describe('WebRTC viewers through mediasoup: simulcast over the ladder, bandwidth estimation, worker restarts (Chromium)', { timeout: 240_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_WEBRTC_ENGINE: 'mediasoup',
      RELAY_WEBRTC_WORKERS: '2',
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([
        { name: '360p', height: 360, videoKbps: 900, audioKbps: 64 },
        { name: '240p', height: 240, videoKbps: 400, audioKbps: 64 },
        { name: '144p', height: 144, videoKbps: 150, audioKbps: 64 },
      ]),
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), bitrate: '1500k' }); // OBS-like: High profile with B-frames, AAC
    chromium = await launchChromium();
    await waitFor(
      'the ladder live',
      async () => {
        const r = await fetch(`${relay.http}/api/streams/demo`).then(
          (x) => x.json() as Promise<{ renditions: { webrtcVideo: boolean }[] }>,
          () => undefined,
        );
        return (r?.renditions.filter((x) => x.webrtcVideo).length ?? 0) === 3;
      },
      30_000,
      250,
    );
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  /** A WebRTC viewer reaching the worker through a shaping relay (800 ms of queue, no limit yet), playing the top layer. */
  const atTopLayerThroughShaper = async (): Promise<{ shaper: UdpShaper; page: Page }> => {
    const shaper = await startUdpShaper(800);
    const page = await chromium.browser.newPage();
    try {
      await throughShaper(page, shaper);
      await page.goto(`${relay.http}/watch/demo?protocol=webrtc`);
      await waitFor('the top layer', async () => (await view(page)).height === 360, 20_000, 250);
      return { shaper, page };
    } catch (err) {
      await page.close();
      await shaper.close();
      throw err;
    }
  };

  test('the relay runs mediasoup workers, one per configured worker, from the patched build', () => {
    const up = findLog(relay.output(), 'mediasoup workers up');
    assert.ok(up, 'the workers-up log line');
    assert.equal(up.workers, 2);
    assert.match(String(up.bin), /\/\.cache\/mediasoup-worker\/[^/]+-[0-9a-f]{12}\/mediasoup-worker$/);
    assert.equal(workerPids(relay).length, 2);
  });

  test('the watch page plays the ladder as simulcast over WHEP: the first picture at once from the WebSocket, then WebRTC at its first keyframe, the top layer with the network free, frames rising and Opus arriving', async () => {
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/watch/demo?protocol=webrtc`);
    const first = await webRtcOrFallback(() => view(page));
    assert.equal(first.protocol, 'webrtc', `fell back: ${first.fallback}`);
    // Fast start: the socket's cached keyframe was shown while WHEP waited for the rung's next one.
    assert.ok(first.events.includes('fast start: over to WebRTC'), first.events.join(', '));
    assert.ok(first.ttffMs !== undefined && first.webrtcFirstFrameMs !== undefined, 'both first-picture times');
    assert.ok(first.ttffMs <= first.webrtcFirstFrameMs, `first picture ${first.ttffMs} ms, WebRTC's ${first.webrtcFirstFrameMs} ms`);
    process.stderr.write(`# first picture ${Math.round(first.ttffMs)} ms after WHEP's start; WebRTC's own ${Math.round(first.webrtcFirstFrameMs)} ms\n`);
    await waitFor('the top layer', async () => (await view(page)).height === 360, 15_000, 250);
    const a = await view(page);
    await new Promise((r) => setTimeout(r, 3000));
    const b = await view(page);
    assert.ok(b.frames - a.frames > 60, `decoded ${b.frames - a.frames} frames in 3 s`);
    assert.ok(b.audioPackets - a.audioPackets > 100, `Opus packets in 3 s: ${b.audioPackets - a.audioPackets}`);
    // The player's own latency over WebRTC: each picture's RTP timestamp against the ingest times the socket read.
    assert.ok(b.latencyMs !== undefined && b.latencyMs < 3000, `the player knows how far behind live it is: ${b.latencyMs} ms`);
    process.stderr.write(`# the player's own latency over WebRTC: ${Math.round(b.latencyMs)} ms\n`);
    await page.close();
  });

  test('a viewer whose link is squeezed below the top layer (a shaping UDP relay) steps down to a lower layer by its bandwidth estimate, and plays on there', async () => {
    const { shaper, page } = await atTopLayerThroughShaper();
    try {
      // 600 kbit/s with 800 ms of buffer: the 360p layer (900 kbit/s) does not fit, 240p (400) and 144p (150) do.
      shaper.setRate(600_000);
      const squeezedAt = Date.now();
      const squeezed = await view(page);
      // Playing at a lower layer: 2 s windows until one decodes at least 50 frames below 360 lines.
      const steady = await waitFor(
        'playing on at a lower layer',
        async () => {
          const a = await view(page);
          await new Promise((r) => setTimeout(r, 2000));
          const b = await view(page);
          if (process.env.DEBUG_ABR) process.stderr.write(`${JSON.stringify(b)}\n`);
          return b.height > 0 && b.height < 360 && a.height < 360 && b.frames - a.frames >= 50 ? b : undefined;
        },
        25_000,
        0,
      );
      const settledS = (Date.now() - squeezedAt) / 1000;
      // Over the link's capacity at the top layer the shaper had to drop: the estimate, not luck, moved it down.
      assert.ok(shaper.stats.dropped > 0);
      await new Promise((r) => setTimeout(r, 3000));
      const later = await view(page);
      assert.ok(later.height < 360, `stayed below the top layer while squeezed: ${later.height}`);
      // Plays on: frames keep coming (at least half the rate, on 2 busy cores) and no freeze.
      assert.ok(later.frames - steady.frames >= 45, `decoded ${later.frames - steady.frames} frames in 3 s at the lower layer`);
      assert.ok(later.freezeS - steady.freezeS < 0.5, `froze ${(later.freezeS - steady.freezeS).toFixed(2)} s at the lower layer`);
      process.stderr.write(
        `ABR: down to ${steady.height} lines, playing steadily ${settledS.toFixed(1)} s after the squeeze; frozen ${(steady.freezeS - squeezed.freezeS).toFixed(2)} s on the way; the shaper dropped ${shaper.stats.dropped} packets\n`,
      );
    } finally {
      await page.close();
      await shaper.close();
    }
  });

  test('a viewer whose link narrows step by step (a throttled connection, 1.2 Mbit/s down to 600 kbit/s) steps down to a lower layer with no freeze and no packet lost', async () => {
    const { shaper, page } = await atTopLayerThroughShaper();
    try {
      const before = await view(page);
      // Each step lasts 2 s: the estimate follows the link down while the queue still holds (800 ms of it), and the
      // consumer moves to a lower layer at its next keyframe before anything overflows.
      const steps: string[] = [];
      for (const kbps of [1200, 1000, 900, 800, 700, 600]) {
        shaper.setRate(kbps * 1000);
        const a = await view(page);
        await new Promise((r) => setTimeout(r, 2000));
        const b = await view(page);
        steps.push(`${kbps}k: ${b.height}p`);
        assert.ok(b.frames - a.frames >= 30, `decoded ${b.frames - a.frames} frames in 2 s at ${kbps} kbit/s`);
      }
      const after = await view(page);
      assert.ok(after.height < 360, `a lower layer at 600 kbit/s: ${steps.join(', ')}`);
      assert.equal(shaper.stats.dropped, 0, `the link's queue overflowed: ${steps.join(', ')}`);
      assert.ok(after.freezeS - before.freezeS < 0.05, `froze ${(after.freezeS - before.freezeS).toFixed(2)} s: ${steps.join(', ')}`);
      process.stderr.write(`# ABR, a narrowing link: ${steps.join(', ')}; frozen ${(after.freezeS - before.freezeS).toFixed(2)} s, nothing dropped\n`);
    } finally {
      await page.close();
      await shaper.close();
    }
  });

  test('mediasoup workers killed with -9: they restart, and a viewer is back on WebRTC (WHEP again) within the player fallback time', async () => {
    const page = await chromium.browser.newPage();
    await page.goto(`${relay.http}/watch/demo?protocol=webrtc`);
    await waitFor('playing over WebRTC', async () => (await view(page)).protocol === 'webrtc', 15_000, 100);
    // The player makes a session again only after one that played a while (10 s).
    await new Promise((r) => setTimeout(r, 10_500));
    const before = workerPids(relay);
    for (const pid of before) process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const back = await waitFor(
      'a new WHEP session playing',
      async () => {
        const v = await view(page);
        return v.whepReconnects >= 1 && v.protocol === 'webrtc' && v.height > 0 ? v : undefined;
      },
      20_000,
      250,
    );
    const recovered = Date.now() - killedAt;
    const start = back.frames;
    await waitFor('frames rising again', async () => (await view(page)).frames > start + 30, 10_000, 100);
    const after = workerPids(relay);
    assert.equal(after.length, 2, 'both workers restarted');
    assert.ok(
      after.every((p) => !before.includes(p)),
      'new processes',
    );
    assert.ok(findLog(relay.output(), /mediasoup worker died/), 'the death is logged');
    process.stderr.write(`worker kill -9: WebRTC back after ${recovered} ms\n`);
    await page.close();
  });
});
