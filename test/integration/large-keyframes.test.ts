import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NatsServerProcess } from '../../node/nats-server-process.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'large-keyframe-key-0123456';
const MAX_PAYLOAD = 16 * 1024;

describe('keyframes larger than NATS max_payload', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-nats-'));
  let nats: NatsServerProcess;
  let relay: TestNode;

  before(async () => {
    writeFileSync(join(dir, 'nats.conf'), `max_payload: ${MAX_PAYLOAD}\n`);
    nats = new NatsServerProcess({ storeDir: join(dir, 'store'), args: ['-c', join(dir, 'nats.conf')] });
    await nats.start();
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams: [{ name: 'big', key: KEY }] });
  });

  after(async () => {
    await relay?.node.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('are split over several messages and reach the viewer whole, with every frame', async () => {
    const viewer = watch(relay.wsUrl('big'));
    await viewer.opened;
    const publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '1280x720', bitrate: '6000k', seconds: 4 });
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the ended status', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    const video = videoRuns(viewer.record);
    assert.equal(video.length, 120);
    const keyframes = viewer.record.fragments.filter((f) => isSyncFlags(f.tracks.find((t) => t.trackId === 1)?.firstSampleFlags));
    assert.ok(keyframes.length >= 2);
    assert.ok(
      keyframes.every((f) => f.bytes > MAX_PAYLOAD),
      `keyframe fragments: ${keyframes.map((f) => f.bytes).join(', ')} bytes`,
    );
    assert.equal(relay.node.edge!.findRendition('big', 'source')!.stats.gaps, 0);
  });
});
