import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simulate } from './simulation.ts';

// A small scale of scripts/simulate (the full one: 1M viewers, 10k streams, 500 edges), with its invariants.
const small = { viewers: 40_000, streams: 800, edges: 36, seconds: 900, sampleEveryS: 30 } as const;
const report = simulate(small);

test('the small simulation runs the day: viewers joined and left, edges failed, the gateway went down and came back', () => {
  assert.ok(report.joins > small.viewers && report.leaves > 5000, `${report.joins} joins, ${report.leaves} leaves`);
  assert.equal(report.failures.length, 2); // 5% of 36
  assert.ok(report.gateway && report.gateway.stalledViewers > 0, 'viewers across the failed gateway paused');
  assert.ok(report.elapsedMs < 20_000, `ran in ${report.elapsedMs} ms`);
});

test('in every region the busiest edge carries at most the bound over the average (1.25x, plus one viewer of rounding)', () => {
  for (const r of report.regions) {
    const average = r.viewers / r.edges;
    assert.ok(r.busiestOverAverage <= 1.25 + 1.5 / average, `${r.region}: ${r.busiestOverAverage}`);
    assert.equal(r.elsewhere, 0, `${r.region}: every viewer on an edge of its own region`);
  }
});

test('a failed edge moves only its own viewers, and no stream it did not hold changes its home edge', () => {
  for (const f of report.failures) {
    assert.ok(f.itsViewers > 0);
    assert.equal(f.moved, f.itsViewers, f.edge);
    assert.equal(f.othersRehomed, 0, f.edge);
  }
});

test('cross-region bus traffic per stream is (regions watching it outside its origin region) x its bitrate, and copies save traffic', () => {
  assert.equal(report.copyMismatches, 0);
  for (const l of report.links) {
    assert.ok(l.meanMbps > 0 && l.peakMbps >= l.meanMbps, `${l.from} -> ${l.to}`);
    assert.ok(l.directMbps > l.meanMbps, `${l.from} -> ${l.to}: one copy per region is less than one per edge`);
  }
});

test("every region's NATS servers lead an even share of its JetStream streams (the origins' balancing), and carry messages", () => {
  for (const region of report.options.regions.map((r) => r.name)) {
    const servers = report.servers.filter((s) => s.server.startsWith(`${region}-`));
    const leads = servers.map((s) => s.leads);
    assert.ok(Math.max(...leads) - Math.min(...leads) <= 1, `${region}: ${leads.join(' ')}`);
    for (const s of servers) assert.ok(s.messagesPerS > 0 && s.streams > 0, s.server);
  }
});

test('the same seed gives the same run', () => {
  const again = simulate(small);
  assert.deepEqual({ ...again, elapsedMs: 0 }, { ...report, elapsedMs: 0 });
});
