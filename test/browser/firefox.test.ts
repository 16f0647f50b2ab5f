import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'puppeteer-core';
import { launchFirefox } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'firefox-stream-key-0123456789';

interface Seen {
  protocol?: string;
  state: string;
  frames: number;
  height: number;
  latencyMs?: number;
}

const seen = (page: Page): Promise<Seen> =>
  page.evaluate(() => {
    const p = (window as unknown as { relayPlayer: { protocol?: string; state: string; latencyMs?: number; framesDecoded(): number } }).relayPlayer;
    return { protocol: p.protocol, state: p.state, frames: p.framesDecoded(), height: document.querySelector('video')!.videoHeight, latencyMs: p.latencyMs };
  });

/**
 * The watch page in a second browser engine: Firefox (Gecko), Debian's ESR, over MSE
 * (WebSocket fMP4) and over LL-HLS (hls.js). Judged by decoded pictures.
 */
describe('the watch page in Firefox (real relay, Debian firefox-esr over WebDriver BiDi)', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let firefox: Awaited<ReturnType<typeof launchFirefox>>;

  before(async () => {
    relay = await startRelay('all', { RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]) });
    // Light, as field notes advise for Firefox and WebKit on 2 shared cores: 360p, transcoding off.
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '640x360', bitrate: '800k', gop: 30 });
    firefox = await launchFirefox();
    await waitFor(
      'the stream live',
      async () => ((await (await fetch(`${relay.http}/api/streams/cam`)).json()) as { renditions: unknown[] }).renditions.length > 0,
      20_000,
    );
  });

  after(async () => {
    await firefox?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  for (const protocol of ['mse', 'hls'] as const) {
    test(`plays over ${protocol === 'mse' ? 'WebSocket fMP4 into MSE' : 'LL-HLS with hls.js'}: pictures decoded and rising`, async () => {
      const page = await firefox.browser.newPage();
      try {
        await page.goto(`${relay.http}/watch/cam?protocol=${protocol}`);
        const first = await waitFor(
          'pictures decoded',
          async () => {
            const s = await seen(page);
            return s.frames > 30 ? s : undefined;
          },
          30_000,
        );
        const later = await waitFor(
          'two more seconds of pictures',
          async () => {
            const s = await seen(page);
            return s.frames > first.frames + 50 ? s : undefined;
          },
          15_000,
        );
        process.stderr.write(`# Firefox over ${protocol}: ${later.frames} pictures, ${later.latencyMs ?? '?'} ms behind live\n`);
        assert.equal(later.protocol, protocol);
        assert.equal(later.state, 'live');
        assert.equal(later.height, 360);
      } finally {
        await page.close();
      }
    });
  }
});
