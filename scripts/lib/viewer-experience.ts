/**
 * Viewer experience in headless Chromium, over WHEP and over MSE on the same page:
 * time to first frame and glass-to-glass (origin ingest -> displayed), for WHIP
 * sources (their own frames) and an OBS-like RTMP source (the transcoded WebRTC rung).
 */
import type { Page } from 'playwright-core';
import { FAKE_MEDIA_ARGS, launchChromium } from '../../test/helpers/browser.ts';
import { boxes } from '../../test/helpers/mp4-read.ts';
import { waitFor } from '../../test/helpers/ports.ts';
import { startPublisher, type Publisher } from '../../test/helpers/publisher.ts';
import { startRelay } from '../../test/helpers/relay-process.ts';
import { whipPublish } from '../../test/helpers/whip-browser.ts';
import { encodeWhipClip, publishWhipClip } from '../../test/helpers/whip-publisher.ts';
import { watch } from '../../test/helpers/ws-viewer.ts';
import { quantile, round } from './figures.ts';
import { ONE_ADDRESS_LOAD } from './one-address.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ingest wall-clock time of each video picture, keyed by its 90 kHz presentation time mod 2^32 (= its RTP timestamp), from the prft boxes a WebSocket viewer gets. */
function ingestClock(wsUrl: string) {
  const clock = new Map<number, number>();
  const viewer = watch(wsUrl);
  viewer.ws.on('message', (data: Buffer, binary: boolean) => {
    if (!binary) return;
    const prft = boxes(data).find((b) => b.type === 'prft');
    if (!prft || prft.body.readUInt32BE(4) !== 1) return;
    const wall = (prft.body.readUInt32BE(8) - 2_208_988_800) * 1000 + (prft.body.readUInt32BE(12) / 2 ** 32) * 1000;
    clock.set(Number(prft.body.readBigUInt64BE(16) % 2n ** 32n), wall);
  });
  return { clock, close: () => viewer.close() };
}

export interface Experience {
  protocol: 'webrtc' | 'mse';
  /** The first picture shown: over WebRTC the player's fast start (the WebSocket's cached keyframe) or WebRTC's, whichever came first. */
  ttffP50Ms: number;
  ttffMaxMs: number;
  /** WebRTC's own first picture (WHEP start -> decoded), as a bare WHEP client waits for it. */
  rtcTtffP50Ms?: number;
  rtcTtffMaxMs?: number;
  loads: number;
  g2gP50Ms: number;
  g2gP95Ms: number;
  samples: number;
  reportP50Ms?: number;
}

/**
 * Time to first frame over `loads` page loads, then glass-to-glass (ingest ->
 * displayed) for 10 s. Over WebRTC each shown frame's RTP timestamp is looked up in
 * `clock` (independent of the relay's sender reports); the player's own figure,
 * from those reports, is given beside it.
 */
async function experience(page: Page, url: string, protocol: 'webrtc' | 'mse', clock: Map<number, number>, loads = 6): Promise<Experience> {
  type P = { ttffMs?: number; webrtcFirstFrameMs?: number; protocol?: string; fallback?: string; events: [number, string][]; glassToGlassMs: number[] };
  const player = () => page.evaluate(() => (window as unknown as { relayPlayer: P }).relayPlayer);
  const ttff: number[] = [];
  const rtcTtff: number[] = [];
  for (let i = 0; i < loads; i++) {
    await page.goto(`${url}?protocol=${protocol}`);
    const first = await waitFor(
      'the first frame',
      async () => {
        const p = await player();
        return p.protocol === protocol && p.ttffMs !== undefined ? p : undefined;
      },
      20_000,
      20,
    ).catch(async (err: unknown) => {
      const p = await player();
      throw new Error(
        `${(err as Error).message} over ${protocol} on ${url}: playing ${p.protocol}, fallback ${p.fallback}; events ${JSON.stringify(p.events)}`,
      );
    });
    ttff.push(first.ttffMs!);
    if (first.webrtcFirstFrameMs !== undefined) rtcTtff.push(first.webrtcFirstFrameMs);
    await sleep(1700); // join at another point of the GOP each time
  }
  // Per shown frame: its RTP timestamp and when it is displayed (string: no bundler helpers in the page).
  await page.evaluate(
    `(() => { const v = document.querySelector('video'); window.shown = []; function cb(now, m) { window.shown.push([m.rtpTimestamp, performance.timeOrigin + m.expectedDisplayTime]); v.requestVideoFrameCallback(cb); } v.requestVideoFrameCallback(cb); })()`,
  );
  await sleep(10_000);
  let g2g: number[];
  if (protocol === 'webrtc') {
    const shown = await page.evaluate<[number | undefined, number][]>('window.shown');
    g2g = shown.flatMap(([rtp, at]) => {
      const wall = rtp === undefined ? undefined : clock.get(rtp);
      return wall === undefined ? [] : [at - wall];
    });
  } else {
    g2g = (await player()).glassToGlassMs.slice(-300);
  }
  g2g.sort((a, b) => a - b);
  ttff.sort((a, b) => a - b);
  rtcTtff.sort((a, b) => a - b);
  const reports = protocol === 'webrtc' ? [...(await player()).glassToGlassMs].sort((a, b) => a - b) : [];
  return {
    protocol,
    ttffP50Ms: round(quantile(ttff, 0.5)),
    ttffMaxMs: round(ttff.at(-1)!),
    ...(protocol === 'webrtc' && rtcTtff.length ? { rtcTtffP50Ms: round(quantile(rtcTtff, 0.5)), rtcTtffMaxMs: round(rtcTtff.at(-1)!) } : {}),
    loads,
    g2gP50Ms: round(quantile(g2g, 0.5)),
    g2gP95Ms: round(quantile(g2g, 0.95)),
    samples: g2g.length,
    ...(reports.length ? { reportP50Ms: round(quantile(reports, 0.5)) } : {}),
  };
}

/**
 * Chromium over WHEP and over MSE, for two WHIP sources (their own frames: a replayed clip that cannot
 * answer keyframe requests, and Chromium's camera, which does) and an OBS-like RTMP source (the
 * transcoded WebRTC rung).
 */
export async function viewerExperience(clipDir: string, kbps: number) {
  const whipKey = 'bench-whip-key-0123456789';
  const rtmpKey = 'bench-rtmp-key-0123456789';
  const camKey = 'bench-camera-key-0123456789';
  const relay = await startRelay('all', {
    RELAY_STREAMS: JSON.stringify([
      // Passthrough: no ladder for the WHIP stream, so WebRTC viewers get its own frames (with a ladder,
      // mediasoup's simulcast would give some of them a transcoded rung).
      { name: 'whip', key: whipKey, transcode: false },
      { name: 'cam', key: camKey, transcode: false },
      { name: 'obs', key: rtmpKey },
    ]),
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
    RELAY_TRANSCODE_ENABLED: 'true',
    RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '360p', height: 360, videoKbps: 800, audioKbps: 96 }]),
  });
  const clip = encodeWhipClip(clipDir, { size: '1280x720', kbps: kbps, seconds: 10 });
  const whip = await publishWhipClip(`${relay.http}/whip/whip`, whipKey, clip);
  const obs: Publisher = startPublisher({ url: relay.rtmpUrl(rtmpKey), size: '1280x720', bitrate: '2500k' });
  const chromium = await launchChromium();
  const camera = await launchChromium(FAKE_MEDIA_ARGS);
  const rows: (Experience & { source: string })[] = [];
  try {
    await waitFor(
      'the transcoded WebRTC rung',
      async () =>
        ((await (await fetch(`${relay.http}/api/streams/obs`)).json().catch(() => ({}))) as { renditions?: { webrtc?: boolean }[] }).renditions?.some(
          (r) => r.webrtc,
        ),
      60_000,
      250,
    );
    const studio = await camera.browser.newPage();
    await studio.goto(`${relay.http}/healthz`);
    const published = await whipPublish(studio, `${relay.http}/whip/cam`, camKey);
    if (published.status !== 201) throw new Error(`the camera's WHIP publish: ${published.status} ${published.body}`);
    const page = await chromium.browser.newPage();
    for (const [source, stream, rendition] of [
      ['WHIP, Chromium camera (passthrough, answers keyframe requests)', 'cam', 'source'],
      ['WHIP, a replayed clip (passthrough, keyframe every 2 s)', 'whip', 'source'],
      ['RTMP, B-frames (transcoded 360p rung)', 'obs', '360p'],
    ] as const) {
      const clock = ingestClock(`ws://127.0.0.1:${relay.httpPort}/ws/${stream}${rendition === 'source' ? '' : `?rendition=${rendition}`}`);
      for (const protocol of ['webrtc', 'mse'] as const) {
        rows.push({ source, ...(await experience(page, `${relay.http}/watch/${stream}`, protocol, clock.clock)) });
        process.stderr.write(JSON.stringify(rows.at(-1)) + '\n');
      }
      clock.close();
    }
  } finally {
    await chromium.close();
    await camera.close();
    await whip.stop();
    await obs.stop();
    await relay.stop();
  }
  return rows;
}
