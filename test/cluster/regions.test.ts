import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startNats } from '../helpers/nats.ts';
import { startSupercluster } from '../helpers/nats-supercluster.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const STREAMS = JSON.stringify(Array.from({ length: 8 }, (_, i) => ({ name: `show-${i}`, key: `regions-test-key-${String(i).padStart(8, '0')}` })));

describe('viewers placed by region, then by the ring (real processes)', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  const edges: Record<string, RelayProcess> = {};

  before(async () => {
    nats = await startNats();
    const env = (id: string, region: string) => ({
      NATS_URL: nats.url,
      RELAY_STREAMS: STREAMS,
      RELAY_CLUSTER_NODE_ID: id,
      RELAY_CLUSTER_REGION: region,
      RELAY_CLUSTER_EDGE_HEARTBEAT_MS: '500',
      RELAY_CLUSTER_EDGE_TTL_MS: '2000',
    });
    for (const [id, region] of [
      ['eu-1', 'eu'],
      ['eu-2', 'eu'],
      ['us-1', 'us'],
    ] as const)
      edges[id] = await startRelay('edge', env(id, region));
    await waitFor(
      'every edge known to every node',
      async () => {
        for (const e of Object.values(edges)) {
          const r = (await (await fetch(`${e.http}/api/route/show-0?region=us`)).json()) as { edge?: string };
          if (r.edge !== 'us-1') return false;
        }
        return true;
      },
      15_000,
      250,
    );
  });

  after(async () => {
    await Promise.all(Object.values(edges).map((e) => e.stop()));
    await nats?.cleanup();
  });

  const route = async (via: RelayProcess, stream: string, init: { header?: string; query?: string } = {}) => {
    const res = await fetch(`${via.http}/api/route/${stream}${init.query ? `?region=${init.query}` : ''}`, {
      headers: init.header ? { 'x-relay-region': init.header } : {},
    });
    assert.equal(res.status, 200);
    return (await res.json()) as { edge: string; region?: string; url: string };
  };

  test('the region the load balancer sets in X-Relay-Region picks an edge of that region, whichever node answers', async () => {
    for (const via of Object.values(edges)) {
      for (let i = 0; i < 8; i++) {
        assert.equal((await route(via, `show-${i}`, { header: 'us' })).edge, 'us-1');
        assert.equal((await route(via, `show-${i}`, { header: 'eu' })).region, 'eu');
      }
    }
  });

  test("without a region, a viewer goes to an edge of the answering node's own region (the edge it reached first)", async () => {
    for (let i = 0; i < 8; i++) {
      assert.equal((await route(edges['us-1']!, `show-${i}`)).edge, 'us-1');
      assert.match((await route(edges['eu-1']!, `show-${i}`)).edge, /^eu-/);
    }
  });

  test("a region's viewers spread over its edges by the ring (both eu edges take streams), and a region with no edge falls back to any", async () => {
    const homes = new Set<string>();
    for (let i = 0; i < 8; i++) homes.add((await route(edges['us-1']!, `show-${i}`, { query: 'eu' })).edge);
    assert.deepEqual([...homes].sort(), ['eu-1', 'eu-2']);
    assert.ok((await route(edges['eu-1']!, 'show-0', { header: 'ap' })).edge);
  });
});

describe('two regions of a NATS supercluster: an origin in eu, edges in eu and us (real nats-servers joined by gateways)', { timeout: 240_000 }, () => {
  const KEY = 'two-regions-key-0123456789';
  let sc: Awaited<ReturnType<typeof startSupercluster>>;
  let nc: NatsConnection;
  let origin: RelayProcess;
  const edges: Record<string, RelayProcess> = {};
  let publisher: Publisher;
  const viewers: Record<string, ReturnType<typeof watch>> = {};

  before(async () => {
    sc = await startSupercluster(['eu', 'us']);
    const [eu, us] = sc.regions;
    nc = await connect({ servers: us!.url });
    const env = (id: string, region: string, url: string) => ({
      NATS_URL: url,
      RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]),
      RELAY_CLUSTER_NODE_ID: id,
      RELAY_CLUSTER_REGION: region,
      RELAY_CLUSTER_REGIONS: JSON.stringify(['eu', 'us']),
      RELAY_BUS_SHARDS: '2',
      RELAY_BUS_COPY_SWEEP_MS: '1000',
      RELAY_NATS_CONNECT_TIMEOUT_MS: '30000',
    });
    origin = await startRelay('origin', env('origin-eu', 'eu', eu!.url));
    edges['eu-1'] = await startRelay('edge', env('eu-1', 'eu', eu!.url));
    edges['us-1'] = await startRelay('edge', env('us-1', 'us', us!.url));
    edges['us-2'] = await startRelay('edge', env('us-2', 'us', us!.url));
    publisher = startPublisher({ url: origin.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
    for (const [id, edge] of Object.entries(edges)) viewers[id] = watch(`ws://127.0.0.1:${edge.httpPort}/ws/cam`);
    await waitFor('frames at every viewer', () => Object.values(viewers).every((v) => v.record.fragments.length > 60), 60_000);
  });

  after(async () => {
    for (const v of Object.values(viewers)) v.close();
    await publisher?.stop();
    await Promise.all(Object.values(edges).map((e) => e.stop()));
    await origin?.stop();
    await nc?.close();
    await sc?.cleanup();
  });

  test("the frames are published in eu's own shards, and us reads them from one copy in us, however many of its edges watch", async () => {
    const jsm = await jetstreamManager(nc);
    const names: { name: string; cluster?: string; sources: number }[] = [];
    for await (const info of jsm.streams.list()) {
      if (info.config.name.startsWith('RELAY_FRAMES'))
        names.push({ name: info.config.name, cluster: info.cluster?.name, sources: info.config.sources?.length ?? 0 });
    }
    names.sort((a, b) => a.name.localeCompare(b.name));
    const copies = names.filter((n) => n.sources > 0);
    assert.equal(copies.length, 1, JSON.stringify(names));
    assert.match(copies[0]!.name, /^RELAY_FRAMES_eu_[01]_cam_IN_us$/);
    assert.equal(copies[0]!.cluster, 'us', 'the copy lives in us');
    for (const shard of ['RELAY_FRAMES_eu_0', 'RELAY_FRAMES_eu_1', 'RELAY_FRAMES_us_0', 'RELAY_FRAMES_us_1'])
      assert.equal(names.find((n) => n.name === shard)?.cluster, shard.split('_')[2], `${shard} in its region: ${JSON.stringify(names)}`);
    // Both us edges consume the copy: one crossing of the link for two edges.
    const copy = await jsm.streams.info(copies[0]!.name);
    assert.equal(copy.state.consumer_count, 2);
  });

  test("a copy in us that nobody reads (its release missed) is swept by us's edges, and the copy they read is left alone", async () => {
    const jsm = await jetstreamManager(nc);
    // A stale copy, as one left behind by an edge killed while NATS was away: no consumer.
    await jsm.streams.add({
      name: 'RELAY_FRAMES_eu_1_gone_IN_us',
      subjects: ['stale-copy.gone'],
      storage: StorageType.Memory,
      placement: { cluster: 'us', tags: [] },
    });
    await waitFor(
      'the stale copy swept (unread for 10 s)',
      async () =>
        !(await jsm.streams.info('RELAY_FRAMES_eu_1_gone_IN_us').then(
          () => true,
          () => false,
        )),
      25_000,
      250,
    );
    let inUse = 0;
    for await (const info of jsm.streams.list()) if (/_cam_IN_us$/.test(info.config.name)) inUse += info.state.consumer_count;
    assert.equal(inUse, 2, 'the copy both us edges read is still there');
  });

  test('when the gateway between the regions is cut and restored, us pauses and resumes where it left off: no frame missing; eu never stops', async () => {
    const at = Object.fromEntries(Object.entries(viewers).map(([id, v]) => [id, v.record.fragments.length]));
    // Both directions: each region's servers send over their own outbound gateway connection.
    for (const r of sc.regions) {
      r.gateway.refuse(true);
      r.gateway.cut();
    }
    const cutAt = Date.now();
    await new Promise((r) => setTimeout(r, 6000)); // the outage itself: 6 s cut off
    const during = Object.fromEntries(Object.entries(viewers).map(([id, v]) => [id, v.record.fragments.filter((f) => f.at > cutAt + 2000).length]));
    for (const r of sc.regions) r.gateway.refuse(false);
    const restoredAt = Date.now();
    await waitFor('us flowing again', () => ['us-1', 'us-2'].every((id) => viewers[id]!.record.fragments.length > at[id]! + 300), 60_000);
    const resumedMs = Math.min(...['us-1', 'us-2'].map((id) => viewers[id]!.record.fragments.find((f) => f.at > restoredAt)!.at - restoredAt));
    process.stderr.write(`# fragments in the last 4 s of a 6 s cut: ${JSON.stringify(during)}; us resumed ${resumedMs} ms after the link came back\n`);
    assert.ok(during['eu-1']! > 60, 'eu went on during the cut');
    assert.ok(during['us-1']! < 10 && during['us-2']! < 10, 'the cut was real: nothing reached us');
    for (const id of ['us-1', 'us-2']) {
      const v = viewers[id]!;
      assert.equal(v.record.closed, undefined, `${id}'s viewer stayed connected`);
      assert.equal(v.record.initSegments, 1, 'one publication throughout');
      const video = v.record.fragments.flatMap((f) => f.tracks.filter((t) => t.trackId === 1));
      const steps = video.slice(1).map((t, i) => t.baseDecodeTime - video[i]!.baseDecodeTime);
      assert.deepEqual(
        steps.filter((x) => x < 2900 || x > 3100),
        [],
        `${id}: every video frame one frame after the previous, across the cut`,
      );
    }
  });
});
