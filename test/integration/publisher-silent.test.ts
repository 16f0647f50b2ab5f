import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'publisher-silent-key-0123456';
const MEDIA_TIMEOUT_MS = 1500;

describe('a publisher that stops sending media without closing its connection', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [{ name: 'cam', key: KEY }],
      rtmp: { host: '127.0.0.1', port: 0, mediaTimeoutMs: MEDIA_TIMEOUT_MS },
    });
  });

  after(async () => {
    await relay?.node.close();
    await nats?.cleanup();
  });

  test('is disconnected with PUBLISHER_SILENT after rtmp.mediaTimeoutMs, its stream ends for viewers, and a new publisher gets the stream at once', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    const frozen = startPublisher({ url: relay.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
    try {
      await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
      // A frozen encoder (or a laptop asleep): the TCP connection stays open, nothing comes.
      process.kill(frozen.process.pid!, 'SIGSTOP');
      const stoppedAt = Date.now();
      const controlsBefore = viewer.record.controls.length;
      await waitFor(
        'the stream to end for the viewer',
        () => viewer.record.controls.slice(controlsBefore).some((c) => c.type === 'status' && c.state === 'ended'),
        10_000,
      );
      const endedAfter = Date.now() - stoppedAt;
      assert.ok(endedAfter >= MEDIA_TIMEOUT_MS - 100, `ended after ${endedAfter} ms, not before the timeout`);
      assert.ok(endedAfter < MEDIA_TIMEOUT_MS + 2000, `ended after ${endedAfter} ms`);
      assert.ok(relay.logs().includes('"code":"PUBLISHER_SILENT"'), 'the disconnect is logged with its code');
      assert.equal(viewer.record.closed, undefined, 'the viewer stays connected');
      // The lease was released with the end: the encoder's reconnect gets the stream at once.
      const before = viewer.record.fragments.length;
      const next = startPublisher({ url: relay.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
      try {
        await waitFor('frames from the new publisher', () => viewer.record.fragments.length > before + 30, 15_000);
        // The frozen one wakes up to a closed connection: ffmpeg gives up, and the stream plays on.
        process.kill(frozen.process.pid!, 'SIGCONT');
        assert.notEqual(await frozen.exited, 0, 'the frozen publisher found its connection closed');
        const during = viewer.record.fragments.length;
        await waitFor('frames still flowing', () => viewer.record.fragments.length > during + 30, 10_000);
        assert.equal(relay.node.origin!.liveStreams().length, 1);
      } finally {
        await next.stop();
      }
    } finally {
      if (frozen.process.exitCode === null && frozen.process.signalCode === null) process.kill(frozen.process.pid!, 'SIGCONT');
      await frozen.stop();
      viewer.close();
    }
  });
});
