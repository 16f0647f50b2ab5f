import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'watchdog-key-0123456789ab';

describe("the edge's stream consumer", { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let origin: TestNode;
  let edge: TestNode;
  let publisher: Publisher;
  const streams = [{ name: 'cam', key: KEY }];

  before(async () => {
    nats = await startNats();
    proxy = await startProxy(nats.port);
    origin = await startTestNode(['origin'], nats.url, { streams });
    // The edge reaches NATS only through the proxy, so the test can cut its connection.
    edge = await startTestNode(['edge'], `nats://127.0.0.1:${proxy.port}`, { streams, edge: { watchdogIntervalMs: 500 } });
    publisher = startPublisher({ url: origin.rtmpUrl(KEY) });
  });

  after(async () => {
    await publisher?.stop();
    await edge?.node.close();
    await origin?.node.close();
    await proxy?.close();
    await nats?.cleanup();
  });

  test("recovers after the edge's NATS connection is cut: the viewer plays on", async () => {
    const viewer = watch(edge.wsUrl('cam'));
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    proxy.refuse(true);
    proxy.cut();
    await new Promise((r) => setTimeout(r, 2000));
    const during = viewer.record.fragments.length;
    proxy.refuse(false);
    await waitFor('frames flowing again', () => viewer.record.fragments.length > during + 60, 15_000);
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    viewer.close();
  });

  test('a consumer that goes silent while the stream is live is recreated from where it stopped, with no gap', async () => {
    const viewer = watch(edge.wsUrl('cam'));
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    const hub = edge.node.edge!.findRendition('cam', 'source')!;
    const restartsBefore = hub.feedStats.restarts;
    const gapsBefore = hub.stats.gaps;
    // The field-notes failure: the consumer object lives on and delivers nothing, for good.
    const feed = (hub as unknown as { feed: { messages?: { close(): Promise<void> } } }).feed;
    await feed.messages!.close();
    const stalledAt = viewer.record.fragments.length;
    await waitFor('the watchdog to recreate the consumer', () => hub.feedStats.restarts > restartsBefore, 10_000);
    await waitFor('frames flowing again', () => viewer.record.fragments.length > stalledAt + 60, 15_000);
    assert.equal(hub.stats.gaps, gapsBefore, 'no frame was lost across the restart');
    const seqs = viewer.record.fragments.map((f) => f.sequence);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `fragment ${i} follows on`);
    assert.equal(viewer.record.closed, undefined);
    viewer.close();
  });
});
