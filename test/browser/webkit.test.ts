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
  /** What the player noted (its events), e.g. which HLS player plays. */
  notes: string[];
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
      const p = (
        window as unknown as {
          relayPlayer: { protocol?: string; state: string; latencyMs?: number; events: [number, string][]; framesDecoded(): number };
        }
      ).relayPlayer;
      return {
        protocol: p.protocol,
        state: p.state,
        frames: p.framesDecoded(),
        height: document.querySelector('video')!.videoHeight,
        latencyMs: p.latencyMs,
        managed: 'ManagedMediaSource' in window,
        notes: p.events.map(([, what]) => what),
      };
    }),
  );

/**
 * The watch page in a third browser engine: WebKit (WebKitGTK's MiniBrowser, Safari's
 * engine), over MSE (WebSocket fMP4; ManagedMediaSource, as on iOS), over LL-HLS with
 * hls.js, and over HLS in WebKit's own player. Judged by decoded pictures: WebKit's playhead may move over a frozen picture.
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

  const cases = [
    { protocol: 'mse', how: 'WebSocket fMP4 into (Managed)MediaSource', query: '', player: undefined },
    { protocol: 'hls', how: 'LL-HLS with hls.js', query: '', player: 'hls: hls.js' },
    // WebKit's own HLS player (GStreamer's, when asked for by WEBKIT_GST_ENABLE_HLS_SUPPORT), as Safari's is where
    // the page finds no MediaSource (iPhones before iOS 17.1) or is asked for it.
    { protocol: 'hls', how: "HLS in WebKit's own player (?hls=native)", query: '&hls=native', player: 'hls: native' },
  ] as const;
  for (const { protocol, how, query, player } of cases) {
    test(`plays over ${how}: pictures decoded and rising`, async () => {
      // A browser per test: WebKitGTK has hung its web process tearing down one page's MSE pipeline for the next.
      const webkit = await launchWebKit(query ? { env: { WEBKIT_GST_ENABLE_HLS_SUPPORT: '1' } } : {});
      try {
        await within('get', 30_000, webkit.driver.get(`${relay.http}/watch/cam?protocol=${protocol}${query}`));
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
          `# WebKit over ${how}: ${later.frames} pictures, ${later.latencyMs ?? '?'} ms behind live, ManagedMediaSource: ${later.managed}\n`,
        );
        assert.equal(later.protocol, protocol);
        if (player) assert.ok(later.notes.includes(player), `played by ${player}: ${later.notes.join(', ')}`);
        assert.equal(later.state, 'live');
        assert.equal(later.height, 360);
      } finally {
        await webkit.close();
      }
    });
  }
});
