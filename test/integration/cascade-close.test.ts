import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats } from '../helpers/nats.ts';
import { busLayout } from '../../server/core/bus/shards.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startPeer } from '../helpers/webrtc-peer.ts';
import { watch } from '../helpers/ws-viewer.ts';

const RTMP_KEY = 'cascade-rtmp-key-0123456789';
const WHIP_KEY = 'cascade-whip-key-0123456789';
/** Resources that hold the process open or the machine's ports: what a leak is made of. */
const TRACKED = new Set(['Timeout', 'TCPWRAP', 'TCPSERVERWRAP', 'UDPWRAP', 'PROCESSWRAP', 'PIPEWRAP', 'STATWATCHER', 'FSEVENTWRAP']);

/**
 * Every timer, socket, listener and child process created from the moment it
 * starts, forgotten when destroyed (a timer that fired or was cleared, a closed
 * handle). What is left at the end was leaked, with where it was made.
 */
function trackResources() {
  const live = new Map<number, { type: string; stack: string }>();
  const hook = createHook({
    init(id, type) {
      if (!TRACKED.has(type)) return;
      const stack = new Error().stack!.split('\n').slice(5, 12).join('\n');
      // The test's own waiting (waitFor's pauses) is not the relay's.
      if (!stack.includes('test/helpers/ports.ts')) live.set(id, { type, stack });
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    count: () => live.size,
    report: () => [...live.values()].map((r) => `${r.type}\n${r.stack}`).join('\n---\n'),
    stop: () => hook.disable(),
  };
}

describe('the ownership tree closes in cascade and leaves nothing behind', { timeout: 180_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let clipDir: string;

  before(async () => {
    nats = await startNats();
    clipDir = mkdtempSync(join(tmpdir(), 'relay-cascade-'));
  });

  after(async () => {
    await nats?.cleanup();
    rmSync(clipDir, { recursive: true, force: true });
  });

  /** Consumers JetStream holds on the frame stream: one per rendition an edge watches. */
  async function busConsumers(streamName: string): Promise<number> {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      return (await jsm.consumers.list(streamName).next()).length;
    } finally {
      await nc.close();
    }
  }

  /** Publishers and viewers still running when a test ends (it failed): stopped, so that the file can exit. */
  const running: (() => unknown)[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((stop) => stop()));
  });

  /** A node with viewers of every kind on streams of every ingest kind. */
  async function busyNode(relay: TestNode) {
    const rtmp = startPublisher({ url: relay.rtmpUrl(RTMP_KEY), size: '320x180', bitrate: '300k' });
    const whip = startPeer(['publish', `${relay.http}/whip/rtc`, WHIP_KEY, clipDir]);
    running.push(
      () => rtmp.stop(),
      () => whip.stop(),
    );
    await whip.saw('connected');
    const wsCam = watch(relay.wsUrl('cam'));
    const wsRtc = watch(relay.wsUrl('rtc'));
    running.push(
      () => wsCam.close(),
      () => wsRtc.close(),
    );
    await waitFor('fragments on both WebSocket viewers', () => wsCam.record.fragments.length > 5 && wsRtc.record.fragments.length > 5, 30_000);
    const whep = startPeer(['play', `${relay.http}/whep/rtc`]);
    running.push(() => whep.stop());
    await whep.saw('media');
    await waitFor('the WHEP viewer counted', () => relay.node.edge!.viewersByStream().rtc?.webrtc === 1);
    return { rtmp, whip, wsCam, wsRtc, whep };
  }

  test('viewers and publishers that leave free their renditions, consumers, sessions and streams', async () => {
    const relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [
        { name: 'cam', key: RTMP_KEY },
        { name: 'rtc', key: WHIP_KEY },
      ],
      edge: { renditionLingerMs: 300 },
    });
    try {
      const edge = relay.node.edge!;
      const { rtmp, whip, wsCam, wsRtc, whep } = await busyNode(relay);
      assert.equal(edge.openStreams, 2);
      assert.equal(await busConsumers(busLayout(relay.config.bus).shardOf('demo').jsStream), 2, 'one consumer per watched rendition');
      wsCam.close();
      wsRtc.close();
      await whep.stop();
      await waitFor('the renditions to close after their last viewer', () => edge.openStreams === 0, 10_000);
      assert.equal(edge.load, 0);
      assert.equal(edge.whep!.sessionCount, 0);
      await waitFor('no consumer left on the bus', async () => (await busConsumers(busLayout(relay.config.bus).shardOf('demo').jsStream)) === 0, 10_000);
      await rtmp.stop();
      await whip.stop();
      await waitFor('no live stream left on the origin', () => relay.node.origin!.liveStreams().length === 0, 15_000);
    } finally {
      await relay.node.close();
    }
  });

  test('closing a node with publishers and viewers of every kind closes them all, and no timer, socket or process is left', async () => {
    const resources = trackResources();
    try {
      const relay = await startTestNode(['origin', 'edge'], nats.url, {
        streams: [
          { name: 'cam', key: RTMP_KEY },
          { name: 'rtc', key: WHIP_KEY },
        ],
      });
      const { rtmp, whip, wsCam, wsRtc, whep } = await busyNode(relay);
      await relay.node.close();
      await relay.node.close(); // a second close is harmless
      assert.equal(relay.node.edge!.openStreams, 0);
      assert.equal(relay.node.origin!.liveStreams().length, 0);
      await waitFor('the WebSocket viewers closed', () => wsCam.record.closed && wsRtc.record.closed);
      assert.equal(wsCam.record.closed!.code, 1001, 'a draining edge sends viewers away with 1001');
      assert.ok(
        wsCam.record.controls.some((c) => c.type === 'reconnect'),
        'and tells them to reconnect elsewhere',
      );
      // The publishers were disconnected: ffmpeg exits on its own.
      assert.notEqual(await rtmp.exited, undefined);
      await whip.stop();
      await whep.stop();
      await waitFor('every timer, socket and process made since the node started to be gone', () => resources.count() === 0, 15_000, 100).catch((err: Error) =>
        assert.fail(`${err.message}; left:\n${resources.report()}`),
      );
    } finally {
      resources.stop();
    }
    assert.equal(await busConsumers('RELAY_FRAMES'), 0, 'no consumer left on the bus');
  });
});
