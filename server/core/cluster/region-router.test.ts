import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EdgeMember } from './placement-ring.ts';
import { RegionRouter } from './region-router.ts';

const edges = (region: string, n: number, capacity = 100): EdgeMember[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${region}-${i}`, url: `http://${region}-${i}`, capacity, load: 0, region }));

test("a viewer goes to an edge of its own region, and a stream's viewers there gather on that region's ring", () => {
  const router = new RegionRouter([...edges('eu', 4), ...edges('us', 4)]);
  assert.deepEqual(router.regions, ['eu', 'us']);
  for (const stream of ['a', 'b', 'c', 'd', 'e']) {
    assert.equal(router.place(stream, 'eu')!.region, 'eu');
    assert.equal(router.place(stream, 'us')!.region, 'us');
    // The same edge as the region's own ring gives: placement within a region is the ring's.
    assert.equal(router.place(stream, 'eu')!.id, router.ring('eu')!.place(stream)!.id);
  }
});

test('the bound holds per region: a busy region fills its own edges evenly, then spills to another region only when full', () => {
  const members = [...edges('eu', 3, 10), ...edges('us', 3, 10)];
  const router = new RegionRouter(members, { balanceFactor: 1.25 });
  const loads = new Map(members.map((m) => [m.id, 0]));
  const placed: string[] = [];
  for (let i = 0; i < 40; i++) {
    const edge = router.place(`s${i % 3}`, 'eu', { loads })!;
    loads.set(edge.id, loads.get(edge.id)! + 1);
    placed.push(edge.region!);
  }
  // eu holds 30: every one of the first 30 there, then the rest in us.
  assert.deepEqual(placed.slice(0, 30), new Array(30).fill('eu'));
  assert.deepEqual(placed.slice(30), new Array(10).fill('us'));
  for (const m of members.filter((x) => x.region === 'eu')) assert.equal(loads.get(m.id), 10);
});

test('a viewer with no region, or from a region with no edges, goes anywhere by the ring of all edges', () => {
  const router = new RegionRouter([...edges('eu', 2), { id: 'plain', url: 'http://plain', capacity: 100, load: 0 }]);
  assert.ok(router.place('x', undefined));
  assert.ok(router.place('x', 'ap'));
  assert.equal(router.ring('ap'), undefined);
  assert.deepEqual(router.regions, ['eu']);
  // An excluded edge (it failed this viewer) is skipped in the region, then everywhere.
  const first = router.place('x', 'eu')!;
  const second = router.place('x', 'eu', { exclude: new Set([first.id]) })!;
  assert.notEqual(second.id, first.id);
  assert.equal(router.place('x', 'eu', { exclude: new Set(['eu-0', 'eu-1']) })!.id, 'plain');
});
