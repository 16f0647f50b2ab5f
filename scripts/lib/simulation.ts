/**
 * The cluster at internet scale, simulated with the project's own placement, routing and shard
 * code (RegionRouter and PlacementRing for viewers, BusLayout for shards, shardToMove for the
 * leaders), not a model of them: viewers join and leave over a simulated hour, edges fail, and a
 * region's gateway fails and comes back. What it counts: how even the edges are per region, how many
 * viewers each failure moves, the bus traffic on every link between regions, the NATS messages
 * per server, and JetStream streams and consumers per server.
 *
 * The bus between regions follows the regions design: each region carries a copy of a stream
 * from another region while one of its viewers watches it (one copy per region, however many of
 * its edges consume it); frames are published in their origin region, in the stream's shard.
 */
import { shardToMove, type ShardLeadership } from '../../server/core/bus/shard-leaders.ts';
import { BusLayout } from '../../server/core/bus/shards.ts';
import type { EdgeMember } from '../../server/core/cluster/placement-ring.ts';
import { RegionRouter } from '../../server/core/cluster/region-router.ts';

export interface SimOptions {
  viewers: number;
  streams: number;
  edges: number;
  /** Region names, and the share of viewers (and edges, and origins) in each. */
  regions: { name: string; share: number }[];
  /** Zipf exponent of stream popularity. */
  zipf: number;
  /** Simulated seconds. */
  seconds: number;
  meanSessionS: number;
  /** Share of edges that fail (at random times in the middle 80% of the run). */
  edgeFailures: number;
  /** One region's gateway fails at `atS` for `forS` seconds (default: the last region's, for a twelfth of the run from its middle; null: none). */
  gatewayFailure?: { region: string; atS: number; forS: number } | null;
  /** Each edge's capacity is this times its even share of the viewers. */
  headroom: number;
  balanceFactor: number;
  natsPerRegion: number;
  shards: number;
  /** Renditions per stream (all consumed by an edge that serves the stream), their total bitrate, and messages per rendition per second. */
  renditions: number;
  streamKbps: number;
  messagesPerRendition: number;
  /** How long the origin region keeps frames (bus.maxAgeSeconds): a copy cut off for longer resumes at the oldest kept. */
  busRetentionS: number;
  sampleEveryS: number;
  seed: number;
}

export const DEFAULTS: SimOptions = {
  viewers: 1_000_000,
  streams: 10_000,
  edges: 500,
  regions: [
    { name: 'eu', share: 0.4 },
    { name: 'us', share: 0.35 },
    { name: 'ap', share: 0.25 },
  ],
  zipf: 1,
  seconds: 3600,
  meanSessionS: 1200,
  edgeFailures: 0.05,
  headroom: 1.6,
  balanceFactor: 1.25,
  natsPerRegion: 3,
  shards: 6,
  renditions: 3,
  streamKbps: 4500,
  messagesPerRendition: 80,
  busRetentionS: 30,
  sampleEveryS: 60,
  seed: 1,
};

export interface RegionReport {
  region: string;
  edges: number;
  /** Largest busiest-edge / average ratio over the samples. */
  busiestOverAverage: number;
  /** Viewers at the end of the run, and how many of them are on an edge outside their region. */
  viewers: number;
  elsewhere: number;
}

export interface FailureReport {
  edge: string;
  atS: number;
  /** Viewers it had, all moved to other edges. */
  itsViewers: number;
  moved: number;
  /** Streams sampled whose home edge (ring primary) changed though it was not the failed edge. */
  othersRehomed: number;
}

export interface LinkReport {
  from: string;
  to: string;
  /** Mean and peak over the samples, Mbit/s. */
  meanMbps: number;
  peakMbps: number;
  /** Mean without regional copies (each edge pulling its own across the link), Mbit/s. */
  directMbps: number;
}

export interface ServerReport {
  server: string;
  messagesPerS: number;
  streams: number;
  consumers: number;
  leads: number;
}

export interface SimReport {
  options: SimOptions;
  joins: number;
  leaves: number;
  regions: RegionReport[];
  failures: FailureReport[];
  links: LinkReport[];
  /** (stream, region, sample)s where the region's copy of a stream and its viewers there disagree: must be 0 (one copy per region watching, outside the stream's own). */
  copyMismatches: number;
  gateway?: { region: string; stalledViewers: number; backlogMbit: number };
  servers: ServerReport[];
  elapsedMs: number;
}

/** mulberry32: a small seeded generator, so a run is the same every time. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickCumulative(cumulative: Float64Array, x: number): number {
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cumulative[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function poisson(mean: number, random: () => number): number {
  // Normal approximation above 30 (the means here are hundreds), Knuth below.
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(random)));
  const limit = Math.exp(-mean);
  let k = 0;
  for (let p = random(); p > limit; p *= random()) k++;
  return k;
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random());
}

export function simulate(partial: Partial<SimOptions> = {}): SimReport {
  const o: SimOptions = { ...DEFAULTS, ...partial };
  if (o.gatewayFailure === undefined) {
    o.gatewayFailure = { region: o.regions.at(-1)!.name, atS: Math.floor(o.seconds / 2), forS: Math.max(1, Math.floor(o.seconds / 12)) };
  }
  const started = performance.now();
  const random = rng(o.seed);
  const R = o.regions.length;
  const regionCumulative = Float64Array.from(
    o.regions.map((_, i) => o.regions.slice(0, i + 1).reduce((n, r) => n + r.share, 0) / o.regions.reduce((n, r) => n + r.share, 0)),
  );

  // Edges, per region in proportion to its viewers, each with the same capacity.
  const capacity = Math.ceil((o.headroom * o.viewers) / o.edges);
  const members: EdgeMember[] = [];
  const edgeRegion: number[] = [];
  o.regions.forEach((r, ri) => {
    const n = ri === R - 1 ? o.edges - members.length : Math.round(o.edges * regionCumulative[ri]!) - members.length;
    for (let i = 0; i < n; i++) {
      members.push({ id: `${r.name}-edge-${i}`, url: `http://${r.name}-${i}`, capacity, load: 0, region: r.name });
      edgeRegion.push(ri);
    }
  });
  const E = members.length;
  const edgeIndex = new Map(members.map((m, i) => [m.id, i]));
  const alive = new Uint8Array(E).fill(1);
  let router = new RegionRouter(members, { balanceFactor: o.balanceFactor });
  const loads = new Map(members.map((m) => [m.id, 0]));
  const regionTotal = new Float64Array(R);

  // Streams: Zipf popularity, an origin region each, a shard in its origin region.
  const streamName = Array.from({ length: o.streams }, (_, i) => `s${i}`);
  const zipfCumulative = new Float64Array(o.streams);
  let sum = 0;
  for (let k = 0; k < o.streams; k++) zipfCumulative[k] = sum += 1 / Math.pow(k + 1, o.zipf);
  for (let k = 0; k < o.streams; k++) zipfCumulative[k]! /= sum;
  const origin = Uint8Array.from({ length: o.streams }, () => pickCumulative(regionCumulative, random()));
  const layout = new BusLayout({ streamName: 'RELAY_FRAMES', subjectPrefix: 'relay', shards: o.shards });
  const shard = Uint16Array.from(streamName, (s) => layout.shardOf(s).index);

  // Viewers, in flat arrays; the active ones listed densely (swap-remove on leave).
  const capacityViewers = o.viewers * 2;
  const vStream = new Int32Array(capacityViewers);
  const vEdge = new Int32Array(capacityViewers);
  const vRegion = new Uint8Array(capacityViewers);
  const active = new Int32Array(capacityViewers);
  const slot = new Int32Array(capacityViewers);
  let activeCount = 0;
  const free: number[] = [];
  let nextId = 0;
  // Viewers per (edge, stream): an edge consumes a stream while this is above 0. Viewers per (stream, region of their edge).
  const perEdgeStream = new Map<number, number>();
  const perStreamRegion = new Int32Array(o.streams * R);
  const edgeViewers: Set<number>[] = Array.from({ length: E }, () => new Set());

  const attach = (v: number, e: number) => {
    vEdge[v] = e;
    const id = members[e]!.id;
    loads.set(id, loads.get(id)! + 1);
    regionTotal[edgeRegion[e]!]!++;
    perStreamRegion[vStream[v]! * R + edgeRegion[e]!]!++;
    const key = e * o.streams + vStream[v]!;
    perEdgeStream.set(key, (perEdgeStream.get(key) ?? 0) + 1);
    edgeViewers[e]!.add(v);
  };
  const detach = (v: number) => {
    const e = vEdge[v]!;
    const id = members[e]!.id;
    loads.set(id, loads.get(id)! - 1);
    regionTotal[edgeRegion[e]!]!--;
    perStreamRegion[vStream[v]! * R + edgeRegion[e]!]!--;
    const key = e * o.streams + vStream[v]!;
    const n = perEdgeStream.get(key)! - 1;
    if (n === 0) perEdgeStream.delete(key);
    else perEdgeStream.set(key, n);
    edgeViewers[e]!.delete(v);
  };
  const place = (v: number): boolean => {
    const region = o.regions[vRegion[v]!]!.name;
    const edge = router.place(streamName[vStream[v]!]!, region, { loads, totalLoad: regionTotal[vRegion[v]!]! });
    if (!edge) return false;
    attach(v, edgeIndex.get(edge.id)!);
    return true;
  };
  let joins = 0;
  let leaves = 0;
  const join = () => {
    const v = free.pop() ?? nextId++;
    vStream[v] = pickCumulative(zipfCumulative, random());
    vRegion[v] = pickCumulative(regionCumulative, random());
    if (!place(v)) {
      free.push(v);
      return;
    }
    slot[v] = activeCount;
    active[activeCount++] = v;
    joins++;
  };
  /** The viewer at `at` in the active list leaves (`attached`: it is on an edge still). */
  const leave = (at: number, attached = true) => {
    const v = active[at]!;
    if (attached) detach(v);
    const last = active[--activeCount]!;
    active[at] = last;
    slot[last] = at;
    free.push(v);
    leaves++;
  };

  // Failures, planned up front.
  const failAt = new Map<number, number>();
  const failing = Math.round(E * o.edgeFailures);
  while (failAt.size < failing) {
    const e = Math.floor(random() * E);
    if (!failAt.has(e)) failAt.set(e, Math.floor(o.seconds * (0.1 + 0.8 * random())));
  }
  const failuresBySecond = new Map<number, number[]>();
  for (const [e, t] of failAt) failuresBySecond.set(t, [...(failuresBySecond.get(t) ?? []), e]);
  const failures: FailureReport[] = [];
  const sampleStreams = streamName.slice(0, Math.min(2000, o.streams));

  // Samples.
  const busiest = new Float64Array(R);
  const linkSamples: number[][] = Array.from({ length: R * R }, () => []);
  let copyMismatches = 0;
  const direct = new Float64Array(R * R);
  let directSamples = 0;
  const gw = o.gatewayFailure ? o.regions.findIndex((r) => r.name === o.gatewayFailure!.region) : -1;
  let gateway: SimReport['gateway'];
  const gatewayDown = (t: number) => gw >= 0 && t >= o.gatewayFailure!.atS && t < o.gatewayFailure!.atS + o.gatewayFailure!.forS;

  const sample = (t: number) => {
    for (let r = 0; r < R; r++) {
      let max = 0;
      let total = 0;
      let n = 0;
      for (let e = 0; e < E; e++) {
        if (edgeRegion[e] !== r || !alive[e]) continue;
        const l = loads.get(members[e]!.id)!;
        max = Math.max(max, l);
        total += l;
        n++;
      }
      if (total > 0) busiest[r] = Math.max(busiest[r]!, max / (total / n));
    }
    // Cross-region traffic, from the edges' consumers: region b's copy of stream s (from region a != b) exists
    // while at least one edge of b consumes s, one copy however many edges; without copies, each edge would
    // pull its own across the link (`direct`, for comparison).
    const links = new Float64Array(R * R);
    const copied = new Uint8Array(o.streams * R);
    const down = gatewayDown(t);
    for (const key of perEdgeStream.keys()) {
      const s = key % o.streams;
      const b = edgeRegion[Math.floor(key / o.streams)]!;
      const a = origin[s]!;
      if (a === b) continue;
      direct[a * R + b]! += o.streamKbps / 1000;
      if (copied[s * R + b]) continue;
      copied[s * R + b] = 1;
      if (down && (a === gw || b === gw)) continue; // the gateway is down: nothing crosses it
      links[a * R + b]! += o.streamKbps / 1000;
    }
    // The invariant, against the other bookkeeping (viewers per stream and region): one copy per region watching
    // it outside its origin region, no more, no fewer.
    for (let s = 0; s < o.streams; s++) {
      for (let b = 0; b < R; b++) if (b !== origin[s] && perStreamRegion[s * R + b]! > 0 !== (copied[s * R + b] === 1)) copyMismatches++;
    }
    directSamples++;
    for (let i = 0; i < R * R; i++) if (Math.floor(i / R) !== i % R) linkSamples[i]!.push(links[i]!);
  };

  // Warm up: the viewers arrive at t = 0 (the hour starts with the platform at its usual load).
  for (let i = 0; i < o.viewers; i++) join();
  const leaveChance = 1 / o.meanSessionS;
  for (let t = 0; t < o.seconds; t++) {
    // Leaves: sessions are exponential (memoryless), so each second every viewer leaves with the same chance.
    const out = Math.min(activeCount, poisson(activeCount * leaveChance, random));
    for (let i = 0; i < out; i++) leave(Math.floor(random() * activeCount));
    // Joins at the rate that keeps the population where it is.
    const arrivals = poisson(o.viewers * leaveChance, random);
    for (let i = 0; i < arrivals; i++) join();
    for (const e of failuresBySecond.get(t) ?? []) {
      const region = o.regions[edgeRegion[e]!]!.name;
      const homesBefore = sampleStreams.map((s) => router.ring(region)?.primary(s)?.id);
      alive[e] = 0;
      router = new RegionRouter(
        members.filter((_, i) => alive[i]),
        { balanceFactor: o.balanceFactor },
      );
      const homesAfter = sampleStreams.map((s) => router.ring(region)?.primary(s)?.id);
      let othersRehomed = 0;
      homesBefore.forEach((h, i) => {
        if (h !== members[e]!.id && h !== homesAfter[i]) othersRehomed++;
      });
      // Its viewers reconnect (the player's fallback) and are routed again; nobody else moves.
      const its = [...edgeViewers[e]!];
      let moved = 0;
      for (const v of its) {
        detach(v);
        if (place(v)) moved++;
        else leave(slot[v]!, false); // nowhere to go: it leaves
      }
      failures.push({ edge: members[e]!.id, atS: t, itsViewers: its.length, moved, othersRehomed });
    }
    if (gw >= 0 && t === o.gatewayFailure!.atS) {
      let stalled = 0;
      let backlogKbps = 0;
      for (let s = 0; s < o.streams; s++) {
        for (let b = 0; b < R; b++) {
          if (b === origin[s] || (origin[s] !== gw && b !== gw)) continue;
          const watchers = perStreamRegion[s * R + b]!;
          if (watchers === 0) continue;
          stalled += watchers;
          backlogKbps += o.streamKbps;
        }
      }
      // When the gateway comes back, each copy catches up from where it stopped, or from the oldest frame its origin
      // still keeps after a longer outage: that much crosses at once.
      const behindS = Math.min(o.gatewayFailure!.forS, o.busRetentionS);
      gateway = { region: o.regions[gw]!.name, stalledViewers: stalled, backlogMbit: (backlogKbps * behindS) / 1000 };
    }
    if (t % o.sampleEveryS === 0) sample(t);
  }

  // NATS: per region, natsPerRegion servers; the shards of its origins and the copies it carries, R3,
  // led where the origins' balancing leaves them (random elections, then shardToMove until even).
  const servers: ServerReport[] = [];
  for (let r = 0; r < R; r++) {
    const names = Array.from({ length: o.natsPerRegion }, (_, i) => `${o.regions[r]!.name}-nats-${i + 1}`);
    // The region's JetStream streams: its own shards, and one copy stream per (other region, shard) it carries.
    const groups: { name: string; streams: number[] }[] = [];
    for (let i = 0; i < o.shards; i++) groups.push({ name: `FRAMES_${i}`, streams: [] });
    for (let a = 0; a < R; a++) if (a !== r) for (let i = 0; i < o.shards; i++) groups.push({ name: `COPY_${o.regions[a]!.name}_${i}`, streams: [] });
    for (let s = 0; s < o.streams; s++) {
      if (origin[s] === r) groups[shard[s]!]!.streams.push(s);
      else if (perStreamRegion[s * R + r]! > 0) {
        const a = origin[s]!;
        const otherIndex = a < r ? a : a - 1;
        groups[o.shards + otherIndex * o.shards + shard[s]!]!.streams.push(s);
      }
    }
    const leadership: ShardLeadership[] = groups.map((g) => {
      const leader = names[Math.floor(random() * names.length)]!;
      return { jsStream: g.name, leader, followers: names.filter((n) => n !== leader) };
    });
    for (let moves = 0; moves < 1000; moves++) {
      const move = shardToMove(leadership);
      if (!move) break;
      const g = leadership.find((x) => x.jsStream === move)!;
      const peers = [g.leader!, ...g.followers];
      const next = g.followers[Math.floor(random() * g.followers.length)]!;
      g.leader = next;
      g.followers = peers.filter((n) => n !== next);
    }
    const perServer = new Map(names.map((n) => [n, { messages: 0, consumers: 0, leads: 0 }]));
    const rate = o.renditions * o.messagesPerRendition;
    groups.forEach((g, gi) => {
      const lead = perServer.get(leadership[gi]!.leader!)!;
      lead.leads++;
      for (const s of g.streams) {
        // In: the publish (own shard) or the copy arriving (copy stream); out: to each follower, to each edge consumer, to each region copying it.
        let edgesHere = 0;
        for (let e = 0; e < E; e++) if (edgeRegion[e] === r && (perEdgeStream.get(e * o.streams + s) ?? 0) > 0) edgesHere++;
        let copiesOut = 0;
        if (gi < o.shards) for (let b = 0; b < R; b++) if (b !== r && perStreamRegion[s * R + b]! > 0) copiesOut++;
        lead.messages += rate * (1 + leadership[gi]!.followers.length + edgesHere + copiesOut);
        lead.consumers += (edgesHere + copiesOut) * o.renditions; // edge consumers sit on the leader's node
        for (const f of leadership[gi]!.followers) perServer.get(f)!.messages += rate;
      }
    });
    for (const [server, v] of perServer)
      servers.push({ server, messagesPerS: Math.round(v.messages), streams: groups.length, consumers: v.consumers, leads: v.leads });
  }

  const regions: RegionReport[] = o.regions.map((r, ri) => {
    let viewers = 0;
    let elsewhere = 0;
    for (let i = 0; i < activeCount; i++) {
      const v = active[i]!;
      if (vRegion[v] !== ri) continue;
      viewers++;
      if (edgeRegion[vEdge[v]!] !== ri) elsewhere++;
    }
    return { region: r.name, edges: edgeRegion.filter((x) => x === ri).length, busiestOverAverage: busiest[ri]!, viewers, elsewhere };
  });
  const links: LinkReport[] = [];
  for (let a = 0; a < R; a++)
    for (let b = 0; b < R; b++) {
      if (a === b) continue;
      const xs = linkSamples[a * R + b]!;
      links.push({
        from: o.regions[a]!.name,
        to: o.regions[b]!.name,
        meanMbps: xs.reduce((n, x) => n + x, 0) / xs.length,
        peakMbps: Math.max(...xs),
        directMbps: direct[a * R + b]! / directSamples,
      });
    }
  return { options: o, joins, leaves, regions, failures, links, copyMismatches, gateway, servers, elapsedMs: performance.now() - started };
}
