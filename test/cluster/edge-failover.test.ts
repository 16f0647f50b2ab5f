import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { PlacementRing } from '../../server/core/cluster/placement-ring.ts';
import { launchChromium } from '../helpers/browser.ts';
import { startNats } from '../helpers/nats.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'edge-failover-key-01234567';
const ADMIN_TOKEN = 'edge-failover-admin-token-0123';
const QUIET = Array.from({ length: 40 }, (_, i) => ({ name: `quiet-${i}`, key: `quiet-stream-key-${String(i).padStart(8, '0')}` }));
const STREAMS = JSON.stringify([{ name: 'cam', key: KEY }, ...QUIET]);

interface PlayerState {
  frames: number;
  edge?: string;
  state: string;
  edges: string[];
}
const playerState = (page: Page): Promise<PlayerState> =>
  page.evaluate(() => {
    const p = (window as unknown as { relayPlayer: { framesDecoded(): number; edge?: string; state: string; edges: string[] } }).relayPlayer;
    return { frames: p.framesDecoded(), edge: p.edge, state: p.state, edges: [...p.edges] };
  });

describe('edges in a cluster (real processes, Chromium)', { timeout: 240_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let origin: RelayProcess;
  const edges = new Map<string, RelayProcess>();
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  const env = (id: string) => ({
    NATS_URL: nats.url,
    RELAY_STREAMS: STREAMS,
    RELAY_CLUSTER_NODE_ID: id,
    RELAY_CLUSTER_EDGE_HEARTBEAT_MS: '500',
    RELAY_CLUSTER_EDGE_TTL_MS: '2000',
    RELAY_ADMIN_TOKEN: ADMIN_TOKEN,
  });
  const startEdge = async (id: string) => {
    const edge = await startRelay('edge', env(id));
    edges.set(id, edge);
    return edge;
  };
  const route = async (via: RelayProcess, stream: string) =>
    (await (await fetch(`${via.http}/api/route/${stream}`)).json()) as { edge: string; url: string; ws: string };

  // The ring each node sees, from its admin API. (Asking /api/route would itself count as
  // routed viewers and shift the bounded loads the test compares.)
  const ringMembers = async (via: RelayProcess): Promise<number> => {
    const r = await fetch(`${via.http}/admin/api/cluster`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return r.ok ? ((await r.json()) as { ring: { members: unknown[] } }).ring.members.length : 0;
  };

  before(async () => {
    nats = await startNats();
    origin = await startRelay('origin', env('origin-1'));
    await Promise.all(['edge-1', 'edge-2', 'edge-3'].map(startEdge));
    publisher = startPublisher({ url: origin.rtmpUrl(KEY) });
    chromium = await launchChromium();
    // Every node must have heard every edge's heartbeat before the routes can agree.
    await waitFor(
      'every node knows the three edges',
      async () => {
        const known = await Promise.all([origin, ...edges.values()].map(ringMembers));
        return known.every((k) => k === 3);
      },
      10_000,
    );
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await Promise.all([...edges.values()].map((e) => e.stop()));
    await origin?.stop();
    await nats?.cleanup();
  });

  test('every node routes a stream to the same edge, and a viewer at the wrong edge is sent there', async () => {
    const answers = await Promise.all([origin, ...edges.values()].map((n) => route(n, 'cam')));
    assert.equal(new Set(answers.map((a) => a.edge)).size, 1, `routes: ${answers.map((a) => a.edge).join(', ')}`);
    const home = answers[0]!.edge;
    const stranger = [...edges].find(([id]) => id !== home)![1];
    const page = await fetch(`${stranger.http}/watch/cam`, { redirect: 'manual' });
    assert.equal(page.status, 302);
    assert.match(page.headers.get('location') ?? '', new RegExp(`^${edges.get(home)!.http}/watch/cam\\?routed=1$`));
    const viewer = watch(`ws://127.0.0.1:${stranger.httpPort}/ws/cam`);
    await waitFor('the redirect', () => viewer.record.controls.find((c) => c.type === 'redirect'), 5000);
    assert.equal(viewer.record.controls.find((c) => c.type === 'redirect')!.edge, home);
    assert.equal(viewer.record.closed?.code ?? 4302, 4302);
  });

  test("HLS goes through the ring once: the multivariant playlist on another edge redirects to the stream's edge, and any edge serves media playlists", async () => {
    const home = (await route(origin, 'cam')).edge;
    // Live as the stream's own edge sees it (each node reads the bus, with its own short cache).
    await waitFor(
      'the stream live on its edge',
      async () => ((await (await fetch(`${edges.get(home)!.http}/api/streams/cam`)).json()) as { renditions: unknown[] }).renditions.length > 0,
      20_000,
    );
    const stranger = [...edges].find(([id]) => id !== home)![1];
    const first = await fetch(`${stranger.http}/hls/cam/index.m3u8`, { redirect: 'manual' });
    assert.equal(first.status, 302);
    const location = first.headers.get('location') ?? '';
    assert.equal(location, `${edges.get(home)!.http}/hls/cam/index.m3u8?routed=1`);
    const multivariant = await fetch(location);
    assert.equal(multivariant.status, 200, 'no second redirect');
    assert.match(await multivariant.text(), /^source\/index\.m3u8$/m, 'media playlists are relative: the client stays on the home edge');
    const media = await fetch(`${stranger.http}/hls/cam/source/index.m3u8`, { redirect: 'manual' });
    assert.equal(media.status, 200, 'a media playlist is served wherever it is asked for');
    assert.match(await media.text(), /#EXTINF/);
  });

  test("kill -9 of the edge a player watches: it reconnects to the stream's next edge and plays again", async () => {
    const page = await chromium.browser.newPage();
    await page.goto(`${origin.http}/watch/cam`.replace(String(origin.httpPort), String([...edges.values()][0]!.httpPort)));
    await waitFor('playing', async () => (await playerState(page)).frames > 30, 20_000);
    const before = await playerState(page);
    const victim = edges.get(before.edge!)!;
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    const framesAtKill = (await playerState(page)).frames;
    const recovered = await waitFor(
      'frames decoding on another edge',
      async () => {
        const s = await playerState(page);
        return s.edge !== before.edge && s.frames > framesAtKill + 15 ? s : undefined;
      },
      15_000,
      25,
    );
    const took = Date.now() - killedAt;
    process.stderr.write(`# edge failover: ${before.edge} killed, playing again on ${recovered.edge} after ${took} ms\n`);
    assert.ok(took < 5000, `playing again after ${took} ms`);
    edges.delete(before.edge!);
    await victim.stop();
    await page.close();
  });

  test('a 4th edge joins while viewers watch: nobody is disconnected, and new viewers follow the new ring', async () => {
    const viewers = QUIET.slice(0, 20).map((s) => ({ stream: s.name, v: watch(`ws://127.0.0.1:${[...edges.values()][0]!.httpPort}/ws/${s.name}?routed=1`) }));
    await waitFor('viewers settled', () => viewers.every(({ v }) => v.record.controls.some((c) => c.type === 'status')), 10_000);
    const settled = viewers.map(({ v }) => v.record.controls.length);
    await startEdge('edge-4');
    await waitFor(
      "the new edge in every node's ring",
      async () => {
        const answers = await Promise.all(QUIET.map((s) => route(origin, s.name)));
        return answers.some((a) => a.edge === 'edge-4');
      },
      10_000,
    );
    await new Promise((r) => setTimeout(r, 1500));
    for (const [i, { v }] of viewers.entries()) {
      assert.equal(v.record.closed, undefined, `viewer ${i} is still connected`);
      assert.equal(
        v.record.controls.slice(settled[i]).some((c) => c.type === 'redirect' || c.type === 'reconnect'),
        false,
        `viewer ${i} was not moved`,
      );
    }
    // New viewers: a stream whose home is now the new edge goes there.
    const members = ['edge-2', 'edge-3', 'edge-1', 'edge-4'].filter((id) => edges.has(id)).map((id) => ({ id, url: '', capacity: 2000, load: 0 }));
    const ring = new PlacementRing(members);
    const movedHome = QUIET.filter((s) => ring.primary(s.name)!.id === 'edge-4');
    assert.ok(movedHome.length > 0, 'some streams now live on the new edge');
    for (const s of movedHome) assert.equal((await route(origin, s.name)).edge, 'edge-4', `${s.name} goes to the new edge`);
    viewers.forEach(({ v }) => v.close());
  });

  test('an edge stopping on SIGTERM drains: its viewers are told to reconnect and land on another edge', async () => {
    const home = (await route(origin, 'cam')).edge;
    const edge = edges.get(home)!;
    const page = await chromium.browser.newPage();
    await page.goto(`${edge.http}/watch/cam?routed=1`);
    await waitFor('playing', async () => (await playerState(page)).frames > 30, 20_000);
    const stoppedAt = Date.now();
    const stopping = edge.stop('SIGTERM');
    const framesAtStop = (await playerState(page)).frames;
    const moved = await waitFor(
      'playing on another edge',
      async () => {
        const s = await playerState(page);
        return s.edge !== home && s.frames > framesAtStop + 15 ? s : undefined;
      },
      15_000,
      25,
    );
    process.stderr.write(`# drain: ${home} stopped, playing on ${moved.edge} after ${Date.now() - stoppedAt} ms\n`);
    await stopping;
    edges.delete(home);
    assert.match(edge.output(), /"msg":"stopping"/);
    await page.close();
  });
});
