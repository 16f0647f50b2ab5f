/**
 * Cluster benchmark (issue 3 targets), real processes on loopback:
 *  - placement: 10,000 simulated viewers over 10 edges (Zipf popularity), busiest
 *    edge against the (1 + eps) x average bound; streams moved when an edge joins;
 *  - origin failover: kill -9 the owner, the publisher reconnects to the other
 *    origin, time until the viewer gets frames again (target <= TTL + 1 s);
 *  - edge failover: kill -9 the edge a Chromium player watches, time until it
 *    decodes frames from another edge (target <= 2 s).
 *
 *   node --import tsx scripts/bench-cluster.ts [--runs 3]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../server/core/config/load.ts';
import { PlacementRing, type EdgeMember } from '../server/core/cluster/placement-ring.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { startNats } from '../test/helpers/nats.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { startPublisher, type Publisher } from '../test/helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../test/helpers/relay-process.ts';
import { watch } from '../test/helpers/ws-viewer.ts';
import { ONE_ADDRESS_LOAD } from './lib/one-address.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const defaults = loadConfig({ env: {} }).cluster;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function placement() {
  const eps = defaults.balanceFactor - 1;
  const members: EdgeMember[] = Array.from({ length: 10 }, (_, i) => ({ id: `edge-${i}`, url: '', capacity: defaults.edgeCapacity, load: 0 }));
  const ring = new PlacementRing(members, { balanceFactor: defaults.balanceFactor, spillAfter: defaults.spillAfter });
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
  const weights = Array.from({ length: 1000 }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const loads = new Map(members.map((m) => [m.id, 0]));
  const edgesPerStream = new Map<number, Set<string>>();
  for (let v = 0; v < 10_000; v++) {
    let r = random() * total;
    let s = 0;
    while ((r -= weights[s]!) > 0) s++;
    const e = ring.place(`stream-${s}`, { loads })!;
    loads.set(e.id, loads.get(e.id)! + 1);
    if (!edgesPerStream.has(s)) edgesPerStream.set(s, new Set());
    edgesPerStream.get(s)!.add(e.id);
  }
  const busiest = Math.max(...loads.values());
  const average = 10_000 / members.length;
  const joined = new PlacementRing([...members, { id: 'edge-new', url: '', capacity: defaults.edgeCapacity, load: 0 }]);
  let moved = 0;
  for (let s = 0; s < 1000; s++) if (ring.primary(`stream-${s}`)!.id !== joined.primary(`stream-${s}`)!.id) moved++;
  return {
    viewers: 10_000,
    edges: 10,
    streams: 1000,
    eps,
    busiest,
    average,
    busiestOverAverage: +(busiest / average).toFixed(3),
    bound: Math.ceil((1 + eps) * average),
    popularStreamEdges: edgesPerStream.get(0)!.size,
    movedOnJoin: +(moved / 1000).toFixed(3),
    oneOverNPlusOne: +(1 / 11).toFixed(3),
  };
}

async function originFailover(): Promise<number[]> {
  const key = 'bench-failover-key-0123456';
  const nats = await startNats();
  const env = (id: string) => ({
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify([{ name: 'cam', key }]),
    RELAY_CLUSTER_NODE_ID: id,
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
  });
  const edge = await startRelay('edge', env('edge-1'));
  const times: number[] = [];
  const publishers: Publisher[] = [];
  let owner = await startRelay('origin', env('origin-0'));
  try {
    publishers.push(startPublisher({ url: owner.rtmpUrl(key) }));
    for (let run = 1; run <= runs; run++) {
      const standby = await startRelay('origin', env(`origin-${run}`));
      const viewer = watch(`ws://127.0.0.1:${edge.httpPort}/ws/cam?routed=1`);
      await waitFor('frames', () => viewer.record.fragments.length > 60, 30_000);
      owner.child.kill('SIGKILL');
      const reconnectAt = Date.now();
      const inits = viewer.record.initSegments;
      publishers.push(startPublisher({ url: standby.rtmpUrl(key) }));
      await waitFor('frames from the new owner', () => viewer.record.initSegments > inits && viewer.record.fragments.at(-1)!.at > reconnectAt, 30_000, 10);
      times.push(viewer.record.fragments.at(-1)!.at - reconnectAt);
      process.stderr.write(`origin failover run ${run}: ${times.at(-1)} ms\n`);
      viewer.close();
      await owner.stop();
      owner = standby;
    }
  } finally {
    await Promise.all(publishers.map((p) => p.stop()));
    await owner.stop();
    await edge.stop();
    await nats.cleanup();
  }
  return times;
}

async function edgeFailover(): Promise<number[]> {
  const key = 'bench-edge-failover-key-012';
  const nats = await startNats();
  const env = (id: string) => ({
    NATS_URL: nats.url,
    RELAY_STREAMS: JSON.stringify([{ name: 'cam', key }]),
    RELAY_CLUSTER_NODE_ID: id,
    RELAY_LOG_LEVEL: 'warn',
    ...ONE_ADDRESS_LOAD,
  });
  const origin = await startRelay('origin', env('origin-1'));
  const edges = new Map<string, RelayProcess>();
  for (let i = 0; i <= runs; i++) edges.set(`edge-${i}`, await startRelay('edge', env(`edge-${i}`)));
  const publisher = startPublisher({ url: origin.rtmpUrl(key) });
  const chromium = await launchChromium();
  const times: number[] = [];
  try {
    const page = await chromium.browser.newPage();
    const state = () =>
      page.evaluate(() => {
        const p = (window as unknown as { relayPlayer: { framesDecoded(): number; edge?: string } }).relayPlayer;
        return { frames: p.framesDecoded(), edge: p.edge };
      });
    await page.goto(`${edges.get('edge-0')!.http}/watch/cam`);
    for (let run = 1; run <= runs; run++) {
      await waitFor('playing', async () => (await state()).frames > 60 && (await state()).edge, 30_000);
      const { edge } = await state();
      edges.get(edge!)!.child.kill('SIGKILL');
      const killedAt = Date.now();
      const frames = (await state()).frames;
      await waitFor(
        'playing elsewhere',
        async () => {
          const s = await state();
          return s.edge !== edge && s.frames > frames + 5;
        },
        30_000,
        20,
      );
      times.push(Date.now() - killedAt);
      process.stderr.write(`edge failover run ${run}: ${times.at(-1)} ms\n`);
      await new Promise((r) => setTimeout(r, 3000));
    }
  } finally {
    await chromium.close();
    await publisher.stop();
    await Promise.all([...edges.values()].map((e) => e.stop()));
    await origin.stop();
    await nats.cleanup();
  }
  return times;
}

const place = placement();
process.stderr.write(JSON.stringify(place) + '\n');
const origin = await originFailover();
const edge = await edgeFailover();
const result = { date: new Date().toISOString(), leaseTtlMs: defaults.leaseTtlMs, placement: place, originFailoverMs: origin, edgeFailoverMs: edge };
writeFileSync(join(out, 'cluster.json'), JSON.stringify(result, null, 2) + '\n');
const md = [
  '| cluster figure | measured | target |',
  '|---|---|---|',
  `| busiest edge / average, 10,000 viewers over 10 edges, 1,000 Zipf streams | ${place.busiestOverAverage} (busiest ${place.busiest}, average ${place.average}) | <= 1 + eps = ${1 + place.eps} |`,
  `| edges carrying the most popular stream | ${place.popularStreamEdges} | spills over several |`,
  `| streams moved when an 11th edge joins | ${(place.movedOnJoin * 100).toFixed(1)}% | about 1/n = ${(place.oneOverNPlusOne * 100).toFixed(1)}% |`,
  `| origin failover: publisher reconnect -> viewer frames again (TTL ${defaults.leaseTtlMs} ms) | median ${median(origin)} ms, worst ${Math.max(...origin)} ms (${origin.length} runs) | <= TTL + 1 s = ${defaults.leaseTtlMs + 1000} ms |`,
  `| edge failover: edge killed -> Chromium playing again | median ${median(edge)} ms, worst ${Math.max(...edge)} ms (${edge.length} runs) | <= 2000 ms |`,
].join('\n');
writeFileSync(join(out, 'cluster.md'), md + '\n');
process.stdout.write(md + '\n');
