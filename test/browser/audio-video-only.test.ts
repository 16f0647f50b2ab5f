import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { StreamInfo } from '../../edge/protocol.ts';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const RADIO_KEY = 'radio-show-key-0123456789';
const SILENT_KEY = 'silent-film-key-0123456789';

interface Heard {
  protocol?: string;
  state: string;
  audioOnly: boolean;
  info: string;
  card: boolean;
  currentTime: number;
  /** MSE: audio bytes the element decoded (Chromium). */
  audioBytes?: number;
  /** WebRTC: audio samples received and decoded, and those concealed (made up for lost packets). */
  samples: number;
  concealed: number;
  videoPackets: number;
  frames: number;
  ttffMs?: number;
}

const heard = (page: Page): Promise<Heard> =>
  page.evaluate(async () => {
    const p = (
      window as unknown as {
        relayPlayer: {
          protocol?: string;
          state: string;
          audioOnly: boolean;
          ttffMs?: number;
          rtc?: RTCPeerConnection;
          framesDecoded(): number;
          audioBytesDecoded(): number | undefined;
        };
      }
    ).relayPlayer;
    let samples = 0;
    let concealed = 0;
    let videoPackets = 0;
    if (p.rtc) {
      (await p.rtc.getStats()).forEach(
        (r: { type: string; kind?: string; totalSamplesReceived?: number; concealedSamples?: number; packetsReceived?: number }) => {
          if (r.type === 'inbound-rtp' && r.kind === 'audio') {
            samples = r.totalSamplesReceived ?? 0;
            concealed = r.concealedSamples ?? 0;
          }
          if (r.type === 'inbound-rtp' && r.kind === 'video') videoPackets = r.packetsReceived ?? 0;
        },
      );
    }
    return {
      protocol: p.protocol,
      state: p.state,
      audioOnly: p.audioOnly,
      info: document.getElementById('info')!.textContent ?? '',
      card: !document.getElementById('audio-only')!.hidden,
      currentTime: document.querySelector('video')!.currentTime,
      audioBytes: p.audioBytesDecoded(),
      samples,
      concealed,
      videoPackets,
      frames: p.framesDecoded(),
      ttffMs: p.ttffMs,
    };
  });

describe('audio-only and video-only streams (real ffmpeg, transcoding on, Chromium)', { timeout: 180_000 }, () => {
  let relay: RelayProcess;
  let radio: Publisher;
  let silent: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  const streamInfo = async (name: string) => (await (await fetch(`${relay.http}/api/streams/${name}`)).json()) as StreamInfo;

  before(async () => {
    relay = await startRelay('all', {
      RELAY_STREAMS: JSON.stringify([
        { name: 'radio', key: RADIO_KEY },
        { name: 'silent', key: SILENT_KEY },
      ]),
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '180p', height: 180, videoKbps: 300, audioKbps: 64, preset: 'ultrafast' }]),
    });
    radio = startPublisher({ url: relay.rtmpUrl(RADIO_KEY), tracks: 'audio' }); // AAC only: a radio show
    silent = startPublisher({ url: relay.rtmpUrl(SILENT_KEY), tracks: 'video', size: '320x180', bitrate: '300k' }); // H.264 with B-frames, no audio
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await Promise.all([radio?.stop(), silent?.stop()]);
    await relay?.stop();
  });

  test('the API lists an audio-only stream: its source and an audio rendition with AAC and Opus (the WebRTC one), and no video ladder', async () => {
    const info = await waitFor(
      'both audio renditions',
      async () => {
        const s = await streamInfo('radio');
        return s.renditions.length >= 2 ? s : undefined;
      },
      20_000,
    );
    assert.deepEqual(
      info.renditions.map((r) => [r.name, r.codecs, r.tracks, r.webrtc]),
      [
        ['source', 'mp4a.40.2', 'audio', false],
        ['audio', 'mp4a.40.2', 'audio', true],
      ],
    );
    assert.deepEqual(info.renditions[1]!.audio, ['mp4a.40.2', 'opus']);
    assert.equal(info.renditions[0]!.width, undefined);
  });

  test('a WebSocket viewer of an audio-only stream gets an audio/mp4 init segment and fragments at once', async () => {
    const viewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/radio`);
    try {
      await waitFor('fragments', () => viewer.record.fragments.length >= 20, 10_000);
      const init = viewer.record.controls.find((c) => c.type === 'init');
      assert.equal(init?.type === 'init' && init.mime, 'audio/mp4; codecs="mp4a.40.2"');
      assert.ok(
        viewer.record.fragments.every((f) => f.tracks.every((t) => t.trackId === 2)),
        'audio samples only',
      );
    } finally {
      viewer.close();
    }
  });

  test('the watch page plays an audio-only stream over MSE: audio decoded, the playhead moving, and a card saying audio only', async () => {
    const page = await chromium.browser.newPage();
    try {
      await page.goto(`${relay.http}/watch/radio?protocol=mse`);
      const first = await waitFor(
        'audio decoding',
        async () => {
          const h = await heard(page);
          return h.state === 'live' && (h.audioBytes ?? 0) > 0 && h.currentTime > 0 ? h : undefined;
        },
        20_000,
      );
      const later = await waitFor(
        'more audio decoded',
        async () => {
          const h = await heard(page);
          return h.currentTime > first.currentTime + 2 ? h : undefined;
        },
        10_000,
      );
      assert.equal(later.protocol, 'mse');
      assert.ok(later.audioBytes! > first.audioBytes!, `audio decoded: ${first.audioBytes} -> ${later.audioBytes} bytes`);
      assert.equal(later.audioOnly, true);
      assert.equal(later.card, true, 'the audio-only card shows');
      assert.match(later.info, /^audio only · mp4a\.40\.2$/);
      assert.equal(later.frames, 0, 'no picture');
      assert.ok(later.ttffMs !== undefined && later.ttffMs < 5000, `time to first sound ${later.ttffMs} ms`);
    } finally {
      await page.close();
    }
  });

  test('the watch page plays an audio-only stream over WHEP: Opus from the audio rendition, decoded without concealment', async () => {
    const page = await chromium.browser.newPage();
    try {
      await page.goto(`${relay.http}/watch/radio?protocol=webrtc`);
      const first = await waitFor(
        'Opus decoding',
        async () => {
          const h = await heard(page);
          return h.protocol === 'webrtc' && h.samples > 48_000 ? h : undefined;
        },
        20_000,
      );
      const later = await waitFor(
        'two more seconds of sound',
        async () => {
          const h = await heard(page);
          return h.samples > first.samples + 2 * 48_000 ? h : undefined;
        },
        10_000,
      );
      assert.equal(later.card, true);
      assert.match(later.info, /audio only/);
      assert.equal(later.videoPackets, 0);
      assert.ok(later.concealed < later.samples * 0.05, `${later.concealed} of ${later.samples} samples concealed`);
      assert.ok(later.currentTime > 0);
    } finally {
      await page.close();
    }
  });

  test('a video-only stream plays over MSE, and over WHEP from its ladder rung (no B-frames), with no audio card', async () => {
    const info = await waitFor(
      'the video-only ladder',
      async () => {
        const s = await streamInfo('silent');
        return s.renditions.some((r) => r.webrtc) ? s : undefined;
      },
      20_000,
    );
    assert.deepEqual(
      info.renditions.map((r) => [r.name, r.tracks, r.webrtc, r.audio.length]),
      [
        ['source', 'video', false, 0],
        ['180p', 'video', true, 0],
      ],
    );
    for (const protocol of ['mse', 'webrtc']) {
      const page = await chromium.browser.newPage();
      try {
        await page.goto(`${relay.http}/watch/silent?protocol=${protocol}`);
        const first = await waitFor(
          `pictures over ${protocol}`,
          async () => {
            const h = await heard(page);
            return h.protocol === protocol && h.frames > 10 ? h : undefined;
          },
          20_000,
        );
        const later = await waitFor(
          'more pictures',
          async () => {
            const h = await heard(page);
            return h.frames > first.frames + 30 ? h : undefined;
          },
          10_000,
        );
        assert.equal(later.card, false);
        assert.equal(later.audioOnly, false);
      } finally {
        await page.close();
      }
    }
  });
});
