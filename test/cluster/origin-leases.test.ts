import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { encodeFrame } from '../../server/core/bus/frame-codec.ts';
import { StreamSubjects } from '../../server/core/bus/subjects.ts';
import { findLog, jsonLines } from '../helpers/logs.ts';
import { startNats } from '../helpers/nats.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { startProxy } from '../helpers/tcp-proxy.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'lease-test-key-0123456789a';
const TTL_MS = 3000;
const env = (natsUrl: string, nodeId: string) => ({
  NATS_URL: natsUrl,
  RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]),
  RELAY_CLUSTER_NODE_ID: nodeId,
  RELAY_CLUSTER_LEASE_TTL_MS: String(TTL_MS),
  // The lease mechanics as they are without takeover (a second publisher refused); takeover.test.ts covers it on.
  RELAY_INGEST_TAKEOVER: 'false',
});

describe('stream leases across origins (real processes)', { timeout: 180_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let processes: RelayProcess[] = [];
  let publishers: Publisher[] = [];

  before(async () => {
    nats = await startNats();
  });

  // Each test leaves nothing behind: its publishers and relays stop, and the lease goes with them.
  afterEach(async () => {
    await Promise.all(publishers.map((p) => p.stop()));
    await Promise.all(processes.map((p) => p.stop()));
    publishers = [];
    processes = [];
  });

  after(async () => {
    await nats?.cleanup();
  });

  const start = async (role: 'origin' | 'edge', nodeId: string, natsUrl = nats.url) => {
    const p = await startRelay(role, env(natsUrl, nodeId));
    processes.push(p);
    return p;
  };
  const publish = (url: string, seconds?: number) => {
    const p = startPublisher({ url, seconds });
    publishers.push(p);
    return p;
  };

  test('two origins race for one stream: exactly one wins, the other publisher is refused with STREAM_ALREADY_PUBLISHING', async () => {
    const [a, b] = await Promise.all([start('origin', 'race-a'), start('origin', 'race-b')]);
    const pa = publish(a.rtmpUrl(KEY));
    const pb = publish(b.rtmpUrl(KEY));
    const loser = await Promise.race([pa.exited.then(() => pa), pb.exited.then(() => pb)]);
    const winner = loser === pa ? pb : pa;
    assert.match(loser.stderr(), /STREAM_ALREADY_PUBLISHING/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(winner.process.exitCode, null, 'the winner keeps publishing');
    const refusedOn = loser === pa ? a : b;
    assert.ok(
      jsonLines(refusedOn.output()).some((l) => l.code === 'STREAM_ALREADY_PUBLISHING'),
      'the refusal is logged with its code',
    );
  });

  test('kill -9 of the owner: the reconnecting publisher gets the stream on the other origin within TTL + 1 s, and stale frames are fenced off', async () => {
    const a = await start('origin', 'owner-a');
    const b = await start('origin', 'standby-b');
    const edge = await start('edge', 'edge-1');
    const viewer = watch(`ws://127.0.0.1:${edge.httpPort}/ws/cam`);
    publish(a.rtmpUrl(KEY));
    await waitFor('frames at the viewer', () => viewer.record.fragments.length > 60, 20_000);
    const tokenA = Number(findLog(a.output(), 'publisher connected')?.token);
    assert.ok(tokenA > 0);

    a.child.kill('SIGKILL');
    const reconnectAt = Date.now();
    const framesBefore = viewer.record.fragments.length;
    // OBS reconnecting through a load balancer that now sends it to origin B.
    publish(b.rtmpUrl(KEY));
    await waitFor('frames from the new owner', () => viewer.record.fragments.length > framesBefore && viewer.record.initSegments >= 2, 2 * TTL_MS + 5000, 20);
    const flowingAfter = viewer.record.fragments[viewer.record.fragments.length - 1]!.at - reconnectAt;
    assert.ok(flowingAfter <= TTL_MS + 1000, `frames flowed again ${flowingAfter} ms after the publisher reconnected (TTL ${TTL_MS} ms)`);
    const tokenB = Number(findLog(b.output(), 'publisher connected')?.token);
    assert.ok(tokenB > tokenA, `the new owner's token ${tokenB} is above the dead owner's ${tokenA}`);

    // A partitioned ex-owner that still publishes: its frames carry the old token.
    await waitFor('more frames from the new owner', () => viewer.record.fragments.length > framesBefore + 30, 10_000);
    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    const subjects = new StreamSubjects('relay', 'cam');
    const marker = 77_777_777 * 90;
    const stale = {
      track: 'video' as const,
      codec: 'h264' as const,
      dts: marker,
      cto: 0,
      keyframe: true,
      payload: Buffer.from('0000000565888000', 'hex'),
      receivedAt: Date.now(),
      init: { metadata: {} },
    };
    for (let i = 0; i < 5; i++)
      await js.publish(subjects.keyframe, encodeFrame({ ...stale, dts: marker + i * 3000 }, { counter: 1_000_000 + i, token: tokenA }, true, 1 << 20)[0]);
    await nc.close();
    const mark = viewer.record.fragments.length;
    await waitFor('frames after the stale ones', () => viewer.record.fragments.length > mark + 30, 10_000);
    const afterNewOwner = viewer.record.fragments.slice(framesBefore);
    assert.equal(
      afterNewOwner.some((f) => f.tracks.some((t) => t.baseDecodeTime >= marker)),
      false,
      "no frame with the dead owner's token reached the viewer",
    );
    const seqs = viewer.record.fragments.slice(mark - 5).map((f) => f.sequence);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, "the new owner's stream plays on unbroken");
    viewer.close();
  });

  test('an origin cut off from NATS stops publishing before its lease could have expired', async () => {
    const proxy = await startProxy(nats.port);
    try {
      const a = await start('origin', 'cut-a', `nats://127.0.0.1:${proxy.port}`);
      const b = await start('origin', 'cut-b');
      const pa = publish(a.rtmpUrl(KEY));
      await waitFor('the lease', async () => findLog(a.output(), 'publisher connected'), 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      proxy.refuse(true);
      proxy.cut();
      const cutAt = Date.now();
      // The publisher, meanwhile, tries the other origin, as OBS would after a disconnect.
      const pb = publish(b.rtmpUrl(KEY));
      const lost = await waitFor('the lease to be given up', () => findLog(a.output(), /stream lease lost/), 2 * TTL_MS);
      const lastRenewal = Date.parse(String(lost.lastRenewalSentAt));
      const stoppedAt = Date.parse(String(lost.stoppedAt));
      assert.ok(lastRenewal < cutAt, 'the last renewal was sent before the cut');
      assert.ok(stoppedAt < lastRenewal + TTL_MS, `stopped at last renewal + ${stoppedAt - lastRenewal} ms, before the lease could expire (TTL ${TTL_MS} ms)`);
      await pa.exited;
      assert.match(pa.stderr() + JSON.stringify(lost), /LEASE_LOST/);
      const took = await waitFor('the other origin to take the stream', async () => findLog(b.output(), 'publisher connected'), 3 * TTL_MS);
      assert.ok(
        Number(took.time) >= lastRenewal + TTL_MS,
        `the other origin took over ${Number(took.time) - lastRenewal} ms after the last renewal, not before the lease expired`,
      );
      assert.ok(Number(took.time) > stoppedAt, 'only after the old owner had stopped');
      await pb.stop();
    } finally {
      await proxy.close();
    }
  });

  test('an origin stopping on SIGTERM ends its stream cleanly: viewers see the end, and the lease is free at once for another origin', async () => {
    const a = await start('origin', 'term-a');
    const b = await start('origin', 'term-b');
    const edge = await start('edge', 'term-edge');
    const viewer = watch(`ws://127.0.0.1:${edge.httpPort}/ws/cam`);
    const pa = publish(a.rtmpUrl(KEY));
    await waitFor('frames at the viewer', () => viewer.record.fragments.length > 30, 20_000);
    const stopping = a.stop('SIGTERM');
    await waitFor('the viewer to see the end', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 5_000);
    await stopping;
    assert.notEqual(a.child.exitCode, null, 'the origin exited');
    assert.equal(a.child.signalCode, null, 'by itself, not killed after the grace period');
    assert.equal(a.child.exitCode, 0);
    await pa.exited;
    const leftAt = Date.now();
    publish(b.rtmpUrl(KEY));
    const took = await waitFor('the other origin to take the stream', async () => findLog(b.output(), 'publisher connected'), 3 * TTL_MS);
    assert.ok(
      Number(took.time) - leftAt < TTL_MS / 2,
      `taken ${Number(took.time) - leftAt} ms after the origin left: released, not expired (TTL ${TTL_MS} ms)`,
    );
    assert.equal(findLog(b.output(), /took over the lease/), undefined, 'nothing was left to take over');
    viewer.close();
  });
});
