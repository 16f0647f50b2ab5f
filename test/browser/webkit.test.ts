import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { WebDriver } from 'selenium-webdriver';
import { launchWebKit } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'webkit-stream-key-0123456789';

interface Seen {
  protocol?: string;
  state: string;
  frames: number;
  height: number;
  latencyMs?: number;
  managed: boolean;
}

/** A WebDriver call that must answer within `ms` (WebKitWebDriver has been seen to never answer). */
function within<T>(what: string, ms: number, call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`WebDriver: ${what} did not answer in ${ms} ms`)), ms)));
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}

const seen = (driver: WebDriver): Promise<Seen> =>
  within(
    'executeScript',
    15_000,
    driver.executeScript<Seen>(() => {
      const p = (window as unknown as { relayPlayer: { protocol?: string; state: string; latencyMs?: number; framesDecoded(): number } }).relayPlayer;
      return {
        protocol: p.protocol,
        state: p.state,
        frames: p.framesDecoded(),
        height: document.querySelector('video')!.videoHeight,
        latencyMs: p.latencyMs,
        managed: 'ManagedMediaSource' in window,
      };
    }),
  );

/**
 * The watch page in a third browser engine: WebKit (WebKitGTK's MiniBrowser, Safari's
 * engine), over MSE (WebSocket fMP4; ManagedMediaSource, as on iOS) and over LL-HLS
 * (hls.js). Judged by decoded pictures: WebKit's playhead may move over a frozen picture.
 */
describe('the watch page in WebKit (real relay, WebKitGTK under Xvfb)', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;

  before(async () => {
    relay = await startRelay('all', { RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]) });
    // Light, as field notes advise: WebKit renders in software here (about 90% of a core at 360p30).
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '640x360', bitrate: '800k', gop: 30 });
    await waitFor(
      'the stream live',
      async () => ((await (await fetch(`${relay.http}/api/streams/cam`)).json()) as { renditions: unknown[] }).renditions.length > 0,
      20_000,
    );
  });

  after(async () => {
    await publisher?.stop();
    await relay?.stop();
  });

  for (const protocol of ['mse', 'hls'] as const) {
    test(`plays over ${protocol === 'mse' ? 'WebSocket fMP4 into (Managed)MediaSource' : 'LL-HLS with hls.js'}: pictures decoded and rising`, async () => {
      // A browser per test: WebKitGTK has hung its web process tearing down one page's MSE pipeline for the next.
      const webkit = await launchWebKit();
      try {
        await within('get', 30_000, webkit.driver.get(`${relay.http}/watch/cam?protocol=${protocol}`));
        const first = await waitFor(
          'pictures decoded',
          async () => {
            const s = await seen(webkit.driver);
            return s.frames > 30 ? s : undefined;
          },
          40_000,
        ).catch(async (err: Error) => {
          const state = await within(
            'executeScript',
            15_000,
            webkit.driver.executeScript<string>(() => {
              const p = (window as unknown as { relayPlayer: { events: unknown; errors: unknown; framesDecoded(): number } }).relayPlayer;
              const v = document.querySelector('video')!;
              return JSON.stringify({
                frames: p.framesDecoded(),
                t: v.currentTime,
                rs: v.readyState,
                paused: v.paused,
                err: v.error?.message,
                errors: p.errors,
                events: p.events,
              });
            }),
          ).catch((e: Error) => e.message);
          throw new Error(`${err.message}: ${state}`);
        });
        const later = await waitFor(
          'two more seconds of pictures',
          async () => {
            const s = await seen(webkit.driver);
            return s.frames > first.frames + 40 ? s : undefined;
          },
          20_000,
        );
        process.stderr.write(
          `# WebKit over ${protocol}: ${later.frames} pictures, ${later.latencyMs ?? '?'} ms behind live, ManagedMediaSource: ${later.managed}\n`,
        );
        assert.equal(later.protocol, protocol);
        assert.equal(later.state, 'live');
        assert.equal(later.height, 360);
      } finally {
        await webkit.close();
      }
    });
  }
});
