import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'takeover-key-0123456789';
const streams = [{ name: 'cam', key: KEY }];

/**
 * An encoder whose connection hangs (frozen: SIGSTOP, as a half-open TCP connection
 * after a network change) reconnects with the same key: the new connection takes
 * the stream over, and viewers play on.
 */
describe('takeover by key', { timeout: 180_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  const nodes: TestNode[] = [];
  let publishers: Publisher[] = [];

  before(async () => {
    nats = await startNats();
  });

  afterEach(async () => {
    for (const p of publishers) {
      if (p.process.exitCode === null && p.process.signalCode === null) p.process.kill('SIGCONT');
      await p.stop();
    }
    publishers = [];
    for (const n of nodes.splice(0)) await n.node.close();
  });

  after(async () => {
    await nats?.cleanup();
  });

  /** Nodes in this process need names of their own: by default all would be <host>-<pid>. */
  const node = async (roles: ('origin' | 'edge')[]) => {
    const n = await startTestNode(roles, nats.url, { streams, cluster: { nodeId: `node-${nodes.length}` } });
    nodes.push(n);
    return n;
  };
  const publish = (origin: TestNode) => {
    const p = startPublisher({ url: origin.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
    publishers.push(p);
    return p;
  };

  /** Freezes `old`, reconnects through `origin`, and returns how long until the viewer has the new publication's frames. */
  async function reconnect(old: Publisher, origin: TestNode, viewer: ReturnType<typeof watch>): Promise<number> {
    old.process.kill('SIGSTOP');
    const initsBefore = viewer.record.initSegments;
    const startedAt = Date.now();
    publish(origin);
    await waitFor(
      'the new publication at the viewer',
      () => viewer.record.initSegments > initsBefore && viewer.record.fragments.at(-1)!.at > startedAt,
      10_000,
    );
    const firstNew = viewer.record.fragments.find((f) => f.at > startedAt && viewer.record.initAt.at(-1)! <= viewer.record.fragments.indexOf(f))!;
    return firstNew.at - startedAt;
  }

  test('on the same origin: the frozen publisher is disconnected with PUBLISHER_REPLACED, viewers play on, and the old one can never write again', async () => {
    const relay = await node(['origin', 'edge']);
    const viewer = watch(relay.wsUrl('cam'));
    const old = publish(relay);
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    const tookMs = await reconnect(old, relay, viewer);
    process.stderr.write(`# takeover on the same origin: the new publication's first frame at the viewer ${tookMs} ms after the reconnect started\n`);
    assert.ok(tookMs < 5000, `${tookMs} ms`);
    assert.ok(relay.logs().includes('"code":"PUBLISHER_REPLACED"'), 'the old publisher was disconnected with PUBLISHER_REPLACED');
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    // The frozen encoder wakes up to a closed connection; nothing of it reaches the bus.
    old.process.kill('SIGCONT');
    assert.notEqual(await old.exited, 0);
    const during = viewer.record.fragments.length;
    await waitFor('frames still flowing', () => viewer.record.fragments.length > during + 30, 10_000);
    const rendition = relay.node.edge!.findRendition('cam', 'source')!;
    assert.equal(rendition.stats.staleDropped, 0, 'no frame of the old publication arrived after the new one');
    assert.equal(rendition.stats.gaps, 0);
    assert.equal(relay.node.origin!.liveStreams().length, 1);
    viewer.close();
  });

  test('on another origin: the owner is asked over NATS, releases the lease at once, and the new origin publishes', async () => {
    const a = await node(['origin']);
    const b = await node(['origin']);
    const edge = await node(['edge']);
    const viewer = watch(edge.wsUrl('cam'));
    const old = publish(a);
    await waitFor('frames flowing', () => viewer.record.fragments.length > 30, 15_000);
    const tokenBefore = a.node.origin!.liveStreams()[0]!.token;
    const tookMs = await reconnect(old, b, viewer);
    process.stderr.write(`# takeover from another origin: the new publication's first frame at the viewer ${tookMs} ms after the reconnect started\n`);
    // Far below a lease TTL (10 s): the owner released the lease instead of letting it expire.
    assert.ok(tookMs < 5000, `${tookMs} ms`);
    assert.ok(a.logs().includes('"code":"PUBLISHER_REPLACED"'), 'origin a disconnected its publisher with PUBLISHER_REPLACED');
    await waitFor("origin a's stream to be gone", () => a.node.origin!.liveStreams().length === 0, 5000);
    const live = b.node.origin!.liveStreams();
    assert.equal(live.length, 1);
    assert.ok(live[0]!.token > tokenBefore, 'the new publication has a higher fencing token');
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    old.process.kill('SIGCONT');
    assert.notEqual(await old.exited, 0, 'the old publisher found its connection closed');
    viewer.close();
  });
});
