import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PlacementRing, type EdgeMember } from './placement-ring.ts';

/** A seeded PRNG (mulberry32): property runs are reproducible. */
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

/** Zipf-distributed stream picks: a few streams are very popular, most are not. */
function zipf(random: () => number, streams: number, s = 1): () => number {
  const weights = Array.from({ length: streams }, (_, i) => 1 / (i + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  let acc = 0;
  for (const w of weights) cdf.push((acc += w / total));
  return () => {
    const r = random();
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

const edges = (n: number, capacity = 1_000_000, prefix = 'edge'): EdgeMember[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, url: `http://10.0.0.${i}:8080`, capacity, load: 0 }));

/** Places viewers one by one, as routers would, with loads updated after each. */
function simulate(members: EdgeMember[], viewers: number, pick: () => number, balanceFactor = 1.25): Map<string, number> {
  return simulateWith(members, viewers, pick, 0, balanceFactor);
}

function simulateWith(members: EdgeMember[], viewers: number, pick: () => number, spillAfter: number, balanceFactor = 1.25): Map<string, number> {
  const loads = new Map(members.map((m) => [m.id, 0]));
  const ring = new PlacementRing(members, { balanceFactor, spillAfter });
  for (let v = 0; v < viewers; v++) {
    const edge = ring.place(`stream-${pick()}`, { loads })!;
    loads.set(edge.id, loads.get(edge.id)! + 1);
  }
  return loads;
}

describe('PlacementRing', () => {
  test('no edge carries more than ceil((1 + eps) x average), whatever the popularity', () => {
    for (const [seed, n, streams] of [
      [1, 3, 50],
      [2, 5, 200],
      [3, 10, 1000],
      [4, 20, 40],
      [5, 10, 1],
    ] as const) {
      const random = rng(seed);
      const loads = simulate(edges(n), 10_000, zipf(random, streams));
      const max = Math.max(...loads.values());
      const bound = Math.ceil(1.25 * (10_000 / n));
      assert.ok(max <= bound, `n=${n} streams=${streams}: busiest ${max} > bound ${bound}`);
      assert.equal(
        [...loads.values()].reduce((a, b) => a + b, 0),
        10_000,
      );
    }
  });

  test('with unequal capacities each edge stays within its weighted bound', () => {
    const members = [...edges(3, 100), ...edges(2, 300, 'big')];
    const loads = simulate(members, 800, zipf(rng(7), 30));
    const total = 3 * 100 + 2 * 300;
    for (const m of members) {
      const bound = Math.min(m.capacity, Math.ceil((1.25 * (800 * m.capacity)) / total));
      assert.ok(loads.get(m.id)! <= bound, `${m.id}: ${loads.get(m.id)} > ${bound}`);
    }
  });

  test('a popular stream spills over several edges; quiet streams stay on one edge each', () => {
    const members = edges(5);
    const ring = new PlacementRing(members);
    const loads = new Map(members.map((m) => [m.id, 0]));
    const hosts = new Map<string, Set<string>>();
    const place = (stream: string) => {
      const e = ring.place(stream, { loads })!;
      loads.set(e.id, loads.get(e.id)! + 1);
      if (!hosts.has(stream)) hosts.set(stream, new Set());
      hosts.get(stream)!.add(e.id);
    };
    for (let i = 0; i < 40; i++) place(`quiet-${i}`);
    for (let i = 0; i < 1000; i++) place('popular');
    assert.ok(hosts.get('popular')!.size >= 4, `popular stream on ${hosts.get('popular')!.size} edges`);
    const quietOnOne = [...hosts].filter(([s, h]) => s.startsWith('quiet') && h.size === 1).length;
    assert.equal(quietOnOne, 40);
  });

  test('when one of n edges joins, about 1/(n+1) of the streams move, all of them to the new edge', () => {
    for (const n of [3, 5, 10]) {
      const before = new PlacementRing(edges(n));
      const after = new PlacementRing([...edges(n), { id: 'edge-new', url: 'http://10.0.1.1:8080', capacity: 1_000_000, load: 0 }]);
      let moved = 0;
      const streams = 5000;
      for (let s = 0; s < streams; s++) {
        const a = before.primary(`stream-${s}`)!.id;
        const b = after.primary(`stream-${s}`)!.id;
        if (a !== b) {
          moved++;
          assert.equal(b, 'edge-new', 'a stream only ever moves to the joining edge');
        }
      }
      const fraction = moved / streams;
      assert.ok(fraction <= 1 / (n + 1) + 0.05, `n=${n}: ${(fraction * 100).toFixed(1)}% moved`);
      assert.ok(fraction >= 1 / (n + 1) - 0.05, `n=${n}: the new edge takes its share (${(fraction * 100).toFixed(1)}%)`);
    }
  });

  test('when an edge leaves, only its own streams move', () => {
    const all = edges(6);
    const before = new PlacementRing(all);
    const after = new PlacementRing(all.filter((m) => m.id !== 'edge-2'));
    for (let s = 0; s < 3000; s++) {
      const a = before.primary(`stream-${s}`)!.id;
      if (a !== 'edge-2') assert.equal(after.primary(`stream-${s}`)!.id, a);
    }
  });

  test('every node computes the same answer from the same membership, in any order', () => {
    const random = rng(11);
    const members = edges(8).map((m) => ({ ...m, load: Math.floor(random() * 500) }));
    const shuffled = [...members].sort(() => random() - 0.5);
    const a = new PlacementRing(members);
    const b = new PlacementRing(shuffled);
    for (let s = 0; s < 2000; s++) {
      assert.equal(a.place(`stream-${s}`)?.id, b.place(`stream-${s}`)?.id);
      assert.equal(a.primary(`stream-${s}`)?.id, b.primary(`stream-${s}`)?.id);
    }
  });

  test('excluded edges are skipped, and an empty ring places nowhere', () => {
    const ring = new PlacementRing(edges(3));
    const first = ring.place('s')!;
    const second = ring.place('s', { exclude: new Set([first.id]) })!;
    assert.notEqual(second.id, first.id);
    assert.equal(ring.place('s', { exclude: new Set(edges(3).map((m) => m.id)) }), undefined);
    assert.equal(new PlacementRing([]).place('s'), undefined);
  });

  test('at low load a stream stays on its home edge up to spillAfter viewers, then spills', () => {
    const members = edges(5, 2000);
    const ring = new PlacementRing(members, { spillAfter: 50 });
    const loads = new Map(members.map((m) => [m.id, 0]));
    const home = ring.primary('lonely')!.id;
    for (let i = 0; i < 50; i++) {
      const e = ring.place('lonely', { loads })!;
      assert.equal(e.id, home, `viewer ${i} stays home`);
      loads.set(e.id, loads.get(e.id)! + 1);
    }
    assert.notEqual(ring.place('lonely', { loads })!.id, home, 'the 51st spills');
    // At 10,000 viewers the floor is irrelevant: the (1 + eps) bound holds as before.
    const busy = simulateWith(edges(10, 2000), 10_000, zipf(rng(3), 1000), 50);
    assert.ok(Math.max(...busy.values()) <= Math.ceil(1.25 * 1000));
  });

  test('a full edge (at its capacity) takes no one', () => {
    const ring = new PlacementRing([
      { id: 'a', url: 'u', capacity: 2, load: 2 },
      { id: 'b', url: 'v', capacity: 2, load: 2 },
    ]);
    assert.equal(ring.place('s'), undefined);
  });
});
