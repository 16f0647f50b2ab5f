import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NatsServerProcess } from '../../node/nats-server-process.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'nats-restart-key-012345678';

describe('a nats-server restart mid-stream, with frames in memory storage', { timeout: 120_000 }, () => {
  const storeDir = mkdtempSync(join(tmpdir(), 'relay-nats-'));
  let nats: NatsServerProcess;
  let relay: TestNode;
  let publisher: Publisher;

  before(async () => {
    nats = new NatsServerProcess({ storeDir });
    await nats.start();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [{ name: 'cam', key: KEY }],
      bus: { storage: 'memory' },
      edge: { watchdogIntervalMs: 1000 },
    });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
  });

  after(async () => {
    await publisher?.stop();
    await relay?.node.close();
    await nats?.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  test('publish failures are handled: the publisher stays connected, the lost stream is recreated and the viewer plays again from a keyframe', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    const port = nats.port;
    await nats.kill();
    await new Promise((r) => setTimeout(r, 1500));
    const before = viewer.record.fragments.length;
    nats = new NatsServerProcess({ storeDir, port });
    await nats.start();
    await waitFor('frames flowing again', () => viewer.record.fragments.length > before + 60, 30_000);
    assert.equal(publisher.process.exitCode, null, 'the publisher was not disconnected');
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    assert.match(relay.logs(), /"code":"BUS_PUBLISH_FAILED"/);
    const resumed = viewer.record.fragments[before]!;
    assert.ok(isSyncFlags(resumed.tracks.find((t) => t.trackId === 1)?.firstSampleFlags), 'playback resumes on a keyframe');
    viewer.close();
  });
});

describe('a nats-server restart mid-stream, with the default storage (file, on a single node)', { timeout: 120_000 }, () => {
  const storeDir = mkdtempSync(join(tmpdir(), 'relay-nats-'));
  let nats: NatsServerProcess;
  let relay: TestNode;
  let publisher: Publisher;

  before(async () => {
    nats = new NatsServerProcess({ storeDir });
    await nats.start();
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams: [{ name: 'cam', key: KEY }], bus: { maxAgeSeconds: 30 } });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
  });

  after(async () => {
    await publisher?.stop();
    await relay?.node.close();
    await nats?.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  test('kill -9 and a restart 2 s later: the viewer that stays connected gets every frame, in order, with no duplicate', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    await waitFor('frames flowing', () => viewer.record.fragments.length > 60, 15_000);
    const port = nats.port;
    await nats.kill();
    await new Promise((r) => setTimeout(r, 2000));
    const before = viewer.record.fragments.length;
    nats = new NatsServerProcess({ storeDir, port });
    await nats.start();
    await waitFor('frames flowing again', () => viewer.record.fragments.length > before + 150, 30_000);
    assert.equal(publisher.process.exitCode, null, 'the publisher was not disconnected');
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    const hub = relay.node.edge!.findRendition('cam', 'source')!;
    assert.equal(hub.stats.gaps, 0, 'no frame missing on the bus');
    const video = viewer.record.fragments.flatMap((f) => f.tracks.filter((t) => t.trackId === 1));
    const steps = video.slice(1).map((t, i) => t.baseDecodeTime - video[i]!.baseDecodeTime);
    assert.equal(viewer.record.initSegments, 1, 'one init: the same publication throughout');
    // FLV times are whole milliseconds: 33 or 34 ms a frame at 30 fps.
    assert.deepEqual(
      steps.filter((s) => s < 2900 || s > 3100),
      [],
      'every video frame one frame after the previous, across the restart',
    );
    const resent = Number(/^relay_bus_messages_resent_total (\d+)/m.exec(await (await fetch(`${relay.http}/metrics`)).text())?.[1]);
    assert.ok(resent > 0, `frames were held and sent again (${resent})`);
    viewer.close();
  });
});
