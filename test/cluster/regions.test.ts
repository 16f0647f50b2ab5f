import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { waitFor } from '../helpers/ports.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

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
