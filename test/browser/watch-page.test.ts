import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'browser-test-key-0123456789';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

interface Sample {
  frames: number;
  time: number;
  state: string;
  latencyMs?: number;
  ttffMs?: number;
}

const sample = (page: Page): Promise<Sample> =>
  page.evaluate(() => {
    const p = (window as unknown as { relayPlayer: { framesDecoded(): number; state: string; latencyMs?: number; ttffMs?: number } }).relayPlayer;
    const video = document.querySelector('video')!;
    return { frames: p.framesDecoded(), time: video.currentTime, state: p.state, latencyMs: p.latencyMs, ttffMs: p.ttffMs };
  });

describe('the watch page in Chromium', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  before(async () => {
    relay = await startRelay('all', { RELAY_DEMO_KEY: KEY });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
    chromium = await launchChromium();
    page = await chromium.browser.newPage();
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  test('plays the stream: decoded frames rise at about the source rate and time advances for 10 s without a stall', async () => {
    await page.goto(`${relay.http}/watch/demo`);
    await waitFor('the player to be live', async () => (await sample(page)).state === 'live', 20_000);
    await waitFor('the first decoded frame', async () => (await sample(page)).frames > 0, 10_000);
    const first = await sample(page);
    let previous = first;
    for (let second = 1; second <= 10; second++) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await sample(page);
      assert.ok(now.frames > previous.frames, `decoded frames stalled at second ${second}: ${previous.frames} -> ${now.frames}`);
      assert.ok(now.time > previous.time, `currentTime stalled at second ${second}`);
      previous = now;
    }
    const fps = (previous.frames - first.frames) / 10;
    assert.ok(fps >= 24, `decoded ${fps.toFixed(1)} frames/s of a 30 fps source`);
    assert.ok(previous.time - first.time >= 8, `currentTime advanced ${(previous.time - first.time).toFixed(2)} s in 10 s`);
    assert.equal(previous.state, 'live');
    assert.ok(previous.latencyMs !== undefined && previous.latencyMs < 3000, `latency to live ${previous.latencyMs} ms`);
    assert.ok(previous.ttffMs !== undefined, 'time to first frame measured');
    const badge = await page.textContent('#state');
    assert.equal(badge, 'live');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}watch-page-playing.png` });
  });

  test('says the stream ended when the publisher stops, and plays again by itself when it restarts', async () => {
    await publisher.stop();
    await waitFor('the page to say ended', async () => (await sample(page)).state === 'ended', 15_000);
    assert.match((await page.textContent('#overlay')) ?? '', /ended/);
    const before = await sample(page);
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
    await waitFor('the page to be live again', async () => (await sample(page)).state === 'live', 20_000);
    await waitFor('frames decoding again', async () => (await sample(page)).frames > before.frames + 60, 20_000);
    const a = await sample(page);
    await new Promise((r) => setTimeout(r, 2000));
    const b = await sample(page);
    assert.ok(b.frames - a.frames >= 40, `decoded ${b.frames - a.frames} frames in 2 s after the restart`);
    assert.ok(b.time > a.time);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}watch-page-after-restart.png` });
  });

  test('destroy() ends the player: its socket closes (the edge counts no viewer) and no frame is decoded after', async () => {
    const viewers = async () => Number(/^relay_edge_viewers\{protocol="ws"\} (\d+)/m.exec(await (await fetch(`${relay.http}/metrics`)).text())?.[1]);
    await waitFor('frames decoding', async () => (await sample(page)).state === 'live' && (await viewers()) === 1, 20_000);
    await page.evaluate(() => (window as unknown as { relayPlayer: { destroy(): void } }).relayPlayer.destroy());
    await waitFor('the edge to count no viewer', async () => (await viewers()) === 0, 10_000);
    const after = await page.evaluate(() => ({ src: document.querySelector('video')!.getAttribute('src'), frames: window.relayPlayer!.framesDecoded() }));
    assert.equal(after.src, null, 'the MediaSource is gone from the element');
    await page.waitForTimeout(1000); // a second of the stream: nothing more may arrive
    assert.equal(await page.evaluate(() => window.relayPlayer!.framesDecoded()), after.frames, 'no frame decoded after destroy()');
    assert.equal(await viewers(), 0, 'and no reconnect');
    // A second destroy() is harmless.
    await page.evaluate(() => window.relayPlayer!.destroy());
  });
});
