import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { StreamInfo } from '../../edge/protocol.ts';
import { ReplayPublishers } from '../../scripts/lib/replay-publishers.ts';
import { launchChromium } from '../helpers/browser.ts';
import { enhancedRtmpClip } from '../helpers/enhanced-rtmp.ts';
import { waitFor } from '../helpers/ports.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const AV1_KEY = 'av1-stream-key-0123456789';
const HEVC_KEY = 'hevc-stream-key-0123456789';

interface Seen {
  state: string;
  rendition: string;
  frames: number;
  info: string;
  undecodable: string[];
  height: number;
}

const seen = (page: Page): Promise<Seen> =>
  page.evaluate(() => {
    const p = (window as unknown as { relayPlayer: { state: string; rendition: string; undecodable: string[]; framesDecoded(): number } }).relayPlayer;
    return {
      state: p.state,
      rendition: p.rendition,
      frames: p.framesDecoded(),
      info: document.getElementById('info')!.textContent ?? '',
      undecodable: p.undecodable,
      height: document.querySelector('video')!.videoHeight,
    };
  });

describe('Enhanced RTMP publishers: AV1 and HEVC (tags written by the test from ffmpeg-encoded clips, Chromium)', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ertmp-browser-'));
  let relay: RelayProcess;
  let publishers: ReplayPublishers[] = [];
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  const streamInfo = async (name: string) => (await (await fetch(`${relay.http}/api/streams/${name}`)).json()) as StreamInfo;
  /** Waits for more than `frames` decoded pictures; on a timeout, says what the player and the relay went through. */
  const pictures = (page: Page, what: string, frames: number, ms: number): Promise<Seen> =>
    waitFor(
      what,
      async () => {
        const s = await seen(page);
        return s.frames > frames ? s : undefined;
      },
      ms,
    ).catch(async (err: Error) => {
      const events = await page.evaluate(() => JSON.stringify((window as unknown as { relayPlayer: { events: unknown } }).relayPlayer.events));
      const warnings = relay
        .output()
        .split('\n')
        .filter((l) => /"level":[45]0/.test(l));
      throw new Error(`${err.message}: ${JSON.stringify(await seen(page))}\nplayer: ${events}\nrelay: ${warnings.slice(-8).join('\n')}`);
    });

  before(async () => {
    relay = await startRelay('all', {
      RELAY_STREAMS: JSON.stringify([
        { name: 'av1', key: AV1_KEY, transcode: false },
        { name: 'hevc', key: HEVC_KEY },
      ]),
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '144p', height: 144, videoKbps: 200, audioKbps: 64, preset: 'ultrafast' }]),
    });
    const base = new URL(relay.rtmpUrl('').replace(/\/$/, ''));
    for (const [codec, key] of [
      ['av1', AV1_KEY],
      ['hevc', HEVC_KEY],
    ] as const) {
      const replay = new ReplayPublishers(enhancedRtmpClip(dir, codec, { size: '320x180', seconds: 4, gop: 30 }), base);
      replay.add(key);
      publishers.push(replay);
    }
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    for (const p of publishers) p.close();
    publishers = [];
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an AV1 stream is accepted, listed with its av01 codecs, and plays through MSE in Chromium', async () => {
    const info = await waitFor('the AV1 source', async () => ((await streamInfo('av1')).renditions.length > 0 ? streamInfo('av1') : undefined), 20_000);
    assert.match(info.renditions[0]!.codecs, /^av01\.0\.\d\dM\.08,mp4a\.40\.2$/);
    assert.deepEqual([info.renditions[0]!.width, info.renditions[0]!.height, info.renditions[0]!.webrtc], [320, 180, false]);
    const page = await chromium.browser.newPage();
    try {
      await page.goto(`${relay.http}/watch/av1?protocol=mse`);
      const first = await waitFor(
        'AV1 pictures decoded',
        async () => {
          const s = await seen(page);
          return s.frames > 20 ? s : undefined;
        },
        20_000,
      );
      const later = await waitFor(
        'more AV1 pictures',
        async () => {
          const s = await seen(page);
          return s.frames > first.frames + 45 ? s : undefined;
        },
        10_000,
      );
      assert.equal(later.rendition, 'source');
      assert.equal(later.height, 180);
      assert.match(later.info, /av01/);
      assert.deepEqual(later.undecodable, []);
    } finally {
      await page.close();
    }
  });

  test('an HEVC stream goes through the ladder to H.264; Chromium, which cannot decode HEVC, never picks the source and plays the H.264 rung', async () => {
    const info = await waitFor(
      'the HEVC source and its H.264 rung',
      async () => {
        const s = await streamInfo('hevc');
        return s.renditions.length >= 2 ? s : undefined;
      },
      30_000,
    );
    assert.deepEqual(
      info.renditions.map((r) => [r.name, r.codecs.split('.')[0], r.height]),
      [
        ['source', 'hvc1', 180],
        ['144p', 'avc1', 144],
      ],
    );
    // The source itself is served as HEVC in MP4 (for browsers that decode it).
    const viewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/hevc`);
    try {
      await waitFor('the HEVC init', () => viewer.record.controls.some((c) => c.type === 'init'), 10_000);
      const init = viewer.record.controls.find((c) => c.type === 'init');
      assert.match(String(init?.mime), /^video\/mp4; codecs="hvc1\.1\.6\.L\d+[.0-9A-F]*,mp4a\.40\.2"$/);
    } finally {
      viewer.close();
    }
    for (const url of [`${relay.http}/watch/hevc?protocol=mse`, `${relay.http}/watch/hevc?protocol=mse&rendition=source`]) {
      const page = await chromium.browser.newPage();
      try {
        await page.goto(url);
        const first = await pictures(page, `H.264 pictures decoded (${url})`, 20, 20_000);
        const later = await pictures(page, 'more pictures', first.frames + 30, 10_000);
        assert.equal(later.rendition, '144p');
        assert.equal(later.height, 144);
        assert.equal(later.state, 'live');
        assert.deepEqual(
          later.undecodable.map((r) => r.split(' ')[0]),
          ['source'],
          'the HEVC source is set aside',
        );
      } finally {
        await page.close();
      }
    }
  });
});
