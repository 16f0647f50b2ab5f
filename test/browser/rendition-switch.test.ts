import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'rendition-switch-key-01234';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

interface State {
  frames: number;
  time: number;
  rendition: string;
  switches: number;
  inits: number;
  height: number;
  renditions: string[];
  errors: string[];
}
const state = (page: Page): Promise<State> =>
  page.evaluate(() => {
    const p = (
      window as unknown as {
        relayPlayer: { framesDecoded(): number; rendition: string; switches: number; inits: number; renditions: { name: string }[]; errors: string[] };
      }
    ).relayPlayer;
    const video = document.querySelector('video')!;
    return {
      frames: p.framesDecoded(),
      time: video.currentTime,
      rendition: p.rendition,
      switches: p.switches,
      inits: p.inits,
      height: video.videoHeight,
      renditions: p.renditions.map((r) => r.name),
      errors: p.errors,
    };
  });

describe('switching renditions in Chromium', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([
        { name: '360p', height: 360, videoKbps: 700, audioKbps: 64 },
        { name: '240p', height: 240, videoKbps: 400, audioKbps: 64 },
      ]),
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
    chromium = await launchChromium();
    page = await chromium.browser.newPage();
    await waitFor(
      'renditions on offer',
      async () => {
        const r = await fetch(`${relay.http}/api/streams/demo`).then(
          (x) => x.json() as Promise<{ renditions: unknown[] }>,
          () => undefined,
        );
        return (r?.renditions.length ?? 0) === 3;
      },
      20_000,
      250,
    );
    await page.goto(`${relay.http}/watch/demo?rendition=360p`);
    await waitFor('playing', async () => (await state(page)).frames > 30, 20_000);
    await waitFor('the renditions in the selector', async () => (await state(page)).renditions.length === 3, 10_000, 250);
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  /** Picks a rendition in the page's own selector, and checks frames keep rising with no stall. */
  async function switchAndWatch(name: string, height: number, inits = 1): Promise<void> {
    await page.selectOption('#rendition', name);
    let previous = await state(page);
    for (let i = 0; i < 16; i++) {
      await new Promise((r) => setTimeout(r, 400));
      const now = await state(page);
      if (now.frames <= previous.frames && process.env.DEBUG_SWITCH) {
        process.stderr.write(
          JSON.stringify(
            await page.evaluate(() => {
              const p = (window as unknown as { relayPlayer: { events: unknown[]; errors: string[] } }).relayPlayer;
              const v = document.querySelector('video')!;
              const b = v.buffered;
              return {
                events: p.events.slice(-8),
                errors: p.errors,
                t: v.currentTime,
                ranges: Array.from({ length: b.length }, (_, k) => [b.start(k), b.end(k)]),
                paused: v.paused,
                readyState: v.readyState,
                seeking: v.seeking,
              };
            }),
          ) + '\n',
        );
      }
      assert.ok(now.frames > previous.frames, `decoded frames stalled ${i * 400} ms after picking ${name}: ${previous.frames} -> ${now.frames}`);
      assert.ok(now.time > previous.time, `currentTime stalled after picking ${name}`);
      previous = now;
    }
    const s = await waitFor(
      `the picture at ${height} lines`,
      async () => {
        const x = await state(page);
        return x.height === height ? x : undefined;
      },
      10_000,
      100,
    );
    assert.equal(s.rendition, name);
    assert.equal(s.inits, inits, inits === 1 ? 'the media was never reset: the switch went into the same SourceBuffer' : 'the media restarted once');
    assert.deepEqual(s.errors, []);
  }

  test('a person picks a lower rendition: the picture changes size at a keyframe, with no stall and no media reset', async () => {
    await switchAndWatch('240p', 240);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}rendition-240p.png` });
  });

  test('and back up, again seamless', async () => {
    await switchAndWatch('360p', 360);
    assert.equal((await state(page)).switches, 2);
  });

  test('a switch to the source (B-frames) restarts the media once and plays on', async () => {
    await page.selectOption('#rendition', 'source');
    const before = await state(page);
    const s = await waitFor(
      'the source playing',
      async () => {
        const x = await state(page);
        return x.rendition === 'source' && x.inits === 2 && x.frames > before.frames + 30 ? x : undefined;
      },
      15_000,
      100,
    );
    assert.deepEqual(s.errors, []);
  });
});
