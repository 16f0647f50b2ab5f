import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'relay-path-key-0123456789';

describe('origin -> JetStream -> edge with a real nats-server and an OBS-like publisher', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams: [{ name: 'cam', key: KEY }] });
  });

  after(async () => {
    await relay?.node.close();
    await nats?.cleanup();
  });

  test('every frame reaches the edge in order, none missing, starting on a keyframe', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    await viewer.opened;
    await waitFor('the offline status', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'offline'));
    // 4 s at 30 fps with a 2 s GOP: exactly 120 video frames, B-frames included.
    const publisher = startPublisher({ url: relay.rtmpUrl(KEY), seconds: 4 });
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the ended status', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    const video = videoRuns(viewer.record);
    assert.equal(video.length, 120, `video frames at the edge: ${video.length}`);
    assert.ok(isSyncFlags(video[0]!.firstSampleFlags), 'the first frame is a keyframe');
    assert.equal(video.filter((v) => isSyncFlags(v.firstSampleFlags)).length, 2, 'two GOPs');
    for (let i = 1; i < video.length; i++) assert.ok(video[i]!.baseDecodeTime > video[i - 1]!.baseDecodeTime, `decode order at ${i}`);
    const seqs = viewer.record.fragments.map((f) => f.sequence);
    seqs.forEach((s, i) => assert.equal(s, seqs[0]! + i, 'fragment sequence numbers are contiguous'));
    const audioSamples = viewer.record.fragments.flatMap((f) => f.tracks.filter((t) => t.trackId === 2)).reduce((n, t) => n + t.samples, 0);
    assert.ok(audioSamples >= 180, `audio frames at the edge: ${audioSamples} (4 s is about 187)`);
    viewer.close();
  });

  test('a viewer joining mid-stream starts on a keyframe at once, from the GOP cache', async () => {
    const publisher = startPublisher({ url: relay.rtmpUrl(KEY), seconds: 8 });
    const early = watch(relay.wsUrl('cam'));
    await waitFor('frames flowing', () => early.record.fragments.length > 75, 15_000);
    const late = watch(relay.wsUrl('cam'));
    const openedAt = Date.now();
    await late.opened;
    await waitFor("the late viewer's first fragment", () => late.record.fragments.length > 0, 5000);
    const first = late.record.fragments[0]!;
    assert.ok(first.at - openedAt < 1000, `first fragment after ${first.at - openedAt} ms`);
    assert.ok(isSyncFlags(first.tracks.find((t) => t.trackId === 1)?.firstSampleFlags), "the late viewer's first video frame is a keyframe");
    assert.equal(late.record.initSegments, 1);
    await publisher.stop();
    early.close();
    late.close();
  });
});
