import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/ports.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { encodeWhipClip, publishWhipClip, type WhipPublisher } from '../helpers/whip-publisher.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'whip-ladder-key-0123456789';

interface RenditionInfo {
  name: string;
  height?: number;
  codecs: string;
  audio: string[];
  webrtc: boolean;
}

describe('a WHIP source through the transcoding ladder (werift publisher and ingest, real ffmpeg)', { timeout: 120_000 }, () => {
  let relay: RelayProcess;
  let publisher: WhipPublisher;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'whip-ladder-'));
    relay = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      // The other ingest engine: Chromium's WHIP test runs on mediasoup's (the default where the worker is built).
      RELAY_WEBRTC_INGEST_ENGINE: 'werift',
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '240p', height: 240, videoKbps: 300, audioKbps: 64 }]),
    });
    publisher = await publishWhipClip(`${relay.http}/whip/demo`, KEY, encodeWhipClip(dir, { size: '640x360', kbps: 800, seconds: 4 }));
  });

  after(async () => {
    await publisher?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the stream lists its own H.264 + Opus rendition first (WHEP plays it untouched) and a 240p rung with AAC and Opus', async () => {
    const renditions = await waitFor(
      'the 240p rung in the catalog',
      async () => {
        const body = (await (await fetch(`${relay.http}/api/streams/demo`)).json()) as { renditions?: RenditionInfo[] };
        return body.renditions?.some((r) => r.name === '240p') ? body.renditions : undefined;
      },
      60_000,
      250,
    );
    assert.match(relay.output(), /"publishers":"werift".*"msg":"WebRTC engines"/, 'the publisher on werift');
    assert.equal(renditions[0]!.name, 'source');
    assert.deepEqual(renditions[0]!.audio, ['opus']);
    assert.equal(renditions[0]!.webrtc, true);
    const rung = renditions.find((r) => r.name === '240p')!;
    assert.equal(rung.height, 240);
    assert.deepEqual(rung.audio, ['mp4a.40.2', 'opus']);
  });

  test('an MSE viewer of the 240p rung gets 240-line H.264 with AAC, keyframes every second', async () => {
    const viewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/demo?rendition=240p`);
    try {
      await waitFor('3 s of the 240p rung', () => videoRuns(viewer.record).length > 90, 30_000, 100);
      const init = viewer.record.controls.find((c) => c.type === 'init') as { mime?: string; height?: number } | undefined;
      assert.ok(init, 'an init control message');
      assert.match(init.mime!, /avc1\..*mp4a\.40\.2/);
      assert.equal(init.height, 240);
      const keyframes = viewer.record.fragments.filter((f) => f.tracks.some((t) => t.trackId === 1 && isSyncFlags(t.firstSampleFlags))).length;
      assert.ok(keyframes >= 2, `${keyframes} keyframes in about 3 s`);
    } finally {
      viewer.close();
    }
  });
});
