import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'publisher-lost-key-0123456';

describe('a stream whose end never reaches the bus', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let origin: TestNode;
  let edge: TestNode;
  const streams = [{ name: 'cam', key: KEY }];

  before(async () => {
    nats = await startNats();
    proxy = await startProxy(nats.port);
    origin = await startTestNode(['origin'], `nats://127.0.0.1:${proxy.port}`, { streams });
    edge = await startTestNode(['edge'], nats.url, { streams });
  });

  after(async () => {
    await edge?.node.close();
    await origin?.node.close();
    await proxy?.close();
    await nats?.cleanup();
  });

  test('is shown offline after a silence, and a new publication re-inits the viewer and plays', async () => {
    const viewer = watch(edge.wsUrl('cam'));
    const first = startPublisher({ url: origin.rtmpUrl(KEY) });
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    // The origin loses NATS, then its publisher leaves: no end marker reaches the bus.
    const cutAt = viewer.record.controls.length;
    proxy.refuse(true);
    proxy.cut();
    await first.stop();
    const since = () => viewer.record.controls.slice(cutAt);
    await waitFor('the offline status', () => since().some((c) => c.type === 'status' && c.state === 'offline'), 12_000);
    assert.equal(
      since().some((c) => c.type === 'status' && c.state === 'ended'),
      false,
      'no end marker was seen',
    );
    proxy.refuse(false);
    const before = viewer.record.fragments.length;
    const second = startPublisher({ url: origin.rtmpUrl(KEY) });
    await waitFor('frames flowing again', () => viewer.record.fragments.length > before + 30, 20_000).catch((err: Error) => {
      throw new Error(
        `${err.message}\norigin log:\n${origin
          .logs()
          .split('\n')
          .filter((l) => /"level":(30|40|50)/.test(l))
          .join('\n')}`,
      );
    });
    assert.equal(viewer.record.initSegments, 2, 'the new publication starts with a new init segment');
    // Frames the origin held while NATS was away may come first (its lease was still valid): then the new publication.
    const resumed = viewer.record.fragments[viewer.record.initAt[1]!]!;
    assert.ok(isSyncFlags(resumed.tracks.find((t) => t.trackId === 1)?.firstSampleFlags), 'on a keyframe');
    const lastStatus = viewer.record.controls.filter((c) => c.type === 'status').at(-1);
    assert.equal(lastStatus?.state, 'live');
    await second.stop();
    viewer.close();
  });
});
