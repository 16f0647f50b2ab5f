import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startPeer, type PeerProcess } from '../helpers/webrtc-peer.ts';
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
  let peers: PeerProcess[] = [];
  const clipDir = mkdtempSync(join(tmpdir(), 'takeover-whip-'));

  before(async () => {
    nats = await startNats();
  });

  afterEach(async () => {
    for (const p of publishers) {
      if (p.process.exitCode === null && p.process.signalCode === null) p.process.kill('SIGCONT');
      await p.stop();
    }
    publishers = [];
    await Promise.all(peers.map((p) => p.stop()));
    peers = [];
    for (const n of nodes.splice(0)) await n.node.close();
  });

  after(async () => {
    await nats?.cleanup();
    rmSync(clipDir, { recursive: true, force: true });
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
    assert.deepEqual(
      viewer.record.controls.filter((c) => c.type === 'status' && c.state === 'ended'),
      [],
      'the viewer never saw the stream end: the replaced publication leaves no end marker',
    );
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

  test('a Chromium viewer plays on through takeovers: a frozen RTMP encoder by its reconnect, that one by a WHIP publisher, and a WHIP session by another', async () => {
    const relay = await node(['origin', 'edge']);
    const chromium = await launchChromium();
    try {
      const page = await chromium.browser.newPage();
      await page.goto(`${relay.http}/watch/cam?protocol=mse`);
      const frames = (p: Page) => p.evaluate(() => (window as unknown as { relayPlayer: { framesDecoded(): number } }).relayPlayer.framesDecoded());
      const inits = (p: Page) => p.evaluate(() => (window as unknown as { relayPlayer: { inits: number } }).relayPlayer.inits);
      /** After a takeover: the page has the new publication (a new init) and decodes 30 more pictures of it, on the same page. */
      const playsOn = async (what: string, initsBefore: number) => {
        await waitFor(`${what}: the new publication at the page`, async () => (await inits(page)) > initsBefore, 15_000);
        const at = await frames(page);
        await waitFor(`${what}: pictures decoded`, async () => (await frames(page)) > at + 30, 15_000);
      };
      const replaced = () => relay.logs().split('publisher replaced by a new one with the stream key').length - 1;

      const first = publish(relay);
      await waitFor('pictures decoded', async () => (await frames(page)) > 30, 20_000);
      first.process.kill('SIGSTOP');
      let before = await inits(page);
      const second = publish(relay);
      await playsOn('RTMP reconnect', before);
      assert.equal(replaced(), 1);

      before = await inits(page);
      const whip = startPeer(['publish', `${relay.http}/whip/cam`, KEY, clipDir]);
      peers.push(whip);
      await whip.saw('connected');
      await playsOn('WHIP over RTMP', before);
      assert.notEqual(await second.exited, 0, 'the RTMP publisher was disconnected');
      assert.equal(relay.node.origin!.liveStreams()[0]!.protocol, 'whip');

      before = await inits(page);
      const whip2 = startPeer(['publish', `${relay.http}/whip/cam`, KEY, clipDir]);
      peers.push(whip2);
      await whip2.saw('connected');
      await playsOn('WHIP over WHIP', before);
      assert.equal(replaced(), 3, 'three takeovers');
      assert.match(relay.logs(), /"module":"ingest.whip".*"code":"PUBLISHER_REPLACED"/, 'the replaced WHIP session was told why');
      assert.equal(relay.node.origin!.liveStreams().length, 1);
      assert.equal(
        await page.evaluate(() => (window as unknown as { relayPlayer: { reconnects: number } }).relayPlayer.reconnects),
        0,
        'the page never reconnected',
      );
      const events = await page.evaluate(() => (window as unknown as { relayPlayer: { events: [number, string][] } }).relayPlayer.events.map((e) => e[1]));
      assert.ok(!events.includes('control status ended'), `the page never showed the stream ended: ${events.join(', ')}`);
    } finally {
      await chromium.close();
    }
  });
});
