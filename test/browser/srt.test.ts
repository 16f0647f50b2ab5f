import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { StreamInfo } from '../../edge/protocol.ts';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'srt-browser-key-0123456789';

const decoded = (page: Page) =>
  page.evaluate(() => {
    const p = (window as unknown as { relayPlayer: { state: string; undecodable: string[]; framesDecoded(): number } }).relayPlayer;
    const video = document.querySelector('video')!;
    return {
      state: p.state,
      frames: p.framesDecoded(),
      undecodable: p.undecodable,
      width: video.videoWidth,
      height: video.videoHeight,
      time: video.currentTime,
    };
  });

describe('an SRT publisher watched in Chromium (the relay CLI, ffmpeg over libsrt)', { timeout: 120_000 }, () => {
  let relay: RelayProcess;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let encoder: Publisher | undefined;

  before(async () => {
    relay = await startRelay('all', { RELAY_STREAMS: JSON.stringify([{ name: 'srtcam', key: KEY }]) });
    chromium = await launchChromium();
  });
  after(async () => {
    await encoder?.stop();
    await chromium?.close();
    await relay?.stop();
  });

  test('an OBS-like ffmpeg publishing over srt://127.0.0.1:<port>?streamid=<key> plays: pictures decoded, the clock moving', async () => {
    encoder = startPublisher({ url: `${relay.srtUrl(KEY)}&latency=120000`, seconds: 60 });
    const info = await waitFor(
      'the SRT stream live',
      async () => {
        const s = (await (await fetch(`${relay.http}/api/streams/srtcam`)).json()) as StreamInfo;
        return s.renditions.length > 0 ? s : undefined;
      },
      20_000,
    );
    assert.match(info.renditions[0]!.codecs, /^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/, 'H.264 High and AAC-LC, from MPEG-TS');
    const page = await chromium.browser.newPage();
    try {
      await page.goto(`${relay.http}/watch/srtcam?protocol=mse`);
      const first = await waitFor('pictures decoded', async () => ((await decoded(page)).frames > 30 ? decoded(page) : undefined), 20_000);
      const later = await waitFor(
        'two more seconds of pictures',
        async () => ((await decoded(page)).frames > first.frames + 60 ? decoded(page) : undefined),
        10_000,
      );
      assert.equal(later.state, 'live');
      assert.deepEqual([later.width, later.height], [640, 360]);
      assert.ok(later.time > first.time + 1, `the clock moved from ${first.time} to ${later.time}`);
      assert.deepEqual(later.undecodable, []);
    } finally {
      await page.close();
    }
  });
});
