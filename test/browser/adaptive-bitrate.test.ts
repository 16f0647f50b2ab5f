import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CDPSession, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'adaptive-bitrate-key-01234';

interface State { frames: number; rendition: string; mode: string; inits: number; height: number; latencyMs?: number; rateKbps?: number; errors: string[]; abr: [number, string, string, string][] }
const state = (page: Page): Promise<State> => page.evaluate(() => {
  const p = (window as unknown as { relayPlayer: { framesDecoded(): number; rendition: string; inits: number; latencyMs?: number; errors: string[]; abr: { mode: string; rateKbps?: number; log: [number, string, string, string][] } } }).relayPlayer;
  return { frames: p.framesDecoded(), rendition: p.rendition, mode: p.abr.mode, inits: p.inits, height: document.querySelector('video')!.videoHeight, latencyMs: p.latencyMs, rateKbps: p.abr.rateKbps, errors: p.errors, abr: [...p.abr.log] };
});

/** DevTools network emulation: it throttles WebSocket traffic too (measured: 2 MB at 1 Mbit/s took 24 s). */
async function throttle(cdp: CDPSession, kbps: number | undefined): Promise<void> {
  const rate = kbps === undefined ? -1 : (kbps * 1000) / 8;
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: rate, uploadThroughput: rate });
}

/** Samples the player every 500 ms until `until` says so; fails on any 2 s without a new decoded frame. */
async function watchUntil(page: Page, what: string, until: (s: State) => boolean, timeoutMs: number): Promise<{ state: State; longestStallMs: number }> {
  const start = Date.now();
  let lastFrames = (await state(page)).frames;
  let lastRise = Date.now();
  let longestStallMs = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await state(page);
    if (s.frames > lastFrames) {
      lastFrames = s.frames;
      lastRise = Date.now();
    }
    longestStallMs = Math.max(longestStallMs, Date.now() - lastRise);
    if (process.env.DEBUG_ABR) process.stderr.write(`${Date.now() - start} ${s.rendition} frames=${s.frames} latency=${s.latencyMs?.toFixed(0)} rate=${s.rateKbps?.toFixed(0)} ${JSON.stringify(s.abr.at(-1) ?? '')}\n`);
    if (until(s)) return { state: s, longestStallMs };
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms; ${JSON.stringify(s)}`);
  }
}

describe('automatic rendition choice in Chromium, under a throttled connection', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let cdp: CDPSession;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '360p', height: 360, videoKbps: 1200, audioKbps: 64 }, { name: '240p', height: 240, videoKbps: 200, audioKbps: 48 }]),
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), bitrate: '1500k' });
    chromium = await launchChromium();
    page = await chromium.browser.newPage();
    cdp = await chromium.browser.newCDPSession(page);
    await cdp.send('Network.enable');
    await waitFor('renditions on offer', async () => {
      const r = await fetch(`${relay.http}/api/streams/demo`).then((x) => x.json() as Promise<{ renditions: unknown[] }>, () => undefined);
      return (r?.renditions.length ?? 0) === 3;
    }, 20_000, 250);
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  test('auto mode starts on a transcoded rendition that fits, not on the source', async () => {
    await page.goto(`${relay.http}/watch/demo`);
    const { state: s } = await watchUntil(page, 'playing 360p', (x) => x.frames > 60 && x.height === 360, 20_000);
    assert.equal(s.mode, 'auto');
    assert.equal(s.rendition, '360p', 'the highest rendition within 80% of the 2000 kbit/s first guess');
    assert.equal(await page.$eval('#rendition', (e) => (e as HTMLSelectElement).value), 'auto');
  });

  test('the connection drops to 500 kbit/s: it goes down to 240p at a keyframe, frames decoded keep rising', async (t) => {
    await throttle(cdp, 500);
    const throttledAt = Date.now();
    const { state: s, longestStallMs } = await watchUntil(page, 'down to 240p', (x) => x.rendition === '240p' && x.height === 240, 20_000);
    const downMs = Date.now() - throttledAt;
    const down = s.abr.find((d) => d[2] === '240p')!;
    assert.match(down[3], /behind and rising|stalled/);
    // Then it plays on at 240p: latency comes back down and frames keep coming.
    const settled = await watchUntil(page, 'latency back under 1.5 s', (x) => (x.latencyMs ?? 9e9) < 1500, 15_000);
    t.diagnostic(`240p on screen ${downMs} ms after the throttle; longest time without a new decoded frame ${Math.max(longestStallMs, settled.longestStallMs)} ms`);
    // A sudden cut to 40% of the rendition's rate freezes the picture for a while: the 0.4 s live
    // buffer drains, detection takes about 1 s, then the lower rendition's next keyframe (GOP 2 s).
    // Measured 1.0-2.0 s (sampled every 500 ms). This bounds it until the down-switch gets faster (issue #4).
    assert.ok(Math.max(longestStallMs, settled.longestStallMs) <= 2600, `longest time without a new decoded frame: ${Math.max(longestStallMs, settled.longestStallMs)} ms`);
    assert.equal(settled.state.inits, 1, 'no media reset');
    assert.deepEqual(settled.state.errors, []);
  });

  test('the connection recovers: it climbs back to 360p, frames decoded keep rising', async (t) => {
    await throttle(cdp, undefined);
    const { state: s, longestStallMs } = await watchUntil(page, 'back up to 360p', (x) => x.rendition === '360p' && x.height === 360, 40_000);
    t.diagnostic(`longest time without a new decoded frame ${longestStallMs} ms`);
    assert.ok(longestStallMs < 2000, `longest time without a new decoded frame: ${longestStallMs} ms`);
    assert.match(s.abr.at(-1)![3], /healthy for/);
    assert.equal(s.inits, 1, 'no media reset');
    assert.deepEqual(s.errors, []);
  });

  test('a person picks a rendition by hand, and auto stays off until asked for again', async () => {
    await page.selectOption('#rendition', '240p');
    const manual = await watchUntil(page, 'manual 240p', (x) => x.rendition === '240p' && x.height === 240, 15_000);
    assert.equal(manual.state.mode, 'manual');
    await new Promise((r) => setTimeout(r, 9000)); // longer than the ABR's hold: it would have climbed
    assert.equal((await state(page)).rendition, '240p');
    await page.selectOption('#rendition', 'auto');
    const auto = await watchUntil(page, 'auto climbs again', (x) => x.rendition === '360p', 20_000);
    assert.equal(auto.state.mode, 'auto');
  });
});
