import assert from 'node:assert/strict';
import { test } from 'node:test';
import { abuseRun } from '../../scripts/lib/misbehaving-viewers.ts';

// The same run as scripts/bench-viewers.ts, smaller: what must hold at any size.
test(
  'viewers that never read, throttled readers and bursts of connects and disconnects cost good viewers nothing, and leave no file or memory behind',
  { timeout: 240_000 },
  async () => {
    const rows = await abuseRun({ good: 3, stalled: 30, throttled: 10, throttledBytesPerSecond: 50_000, churnBurst: 300, churnBursts: 2, phaseSeconds: 8 });
    const [baseline, , , churn, settled] = rows;
    for (const r of rows) assert.equal(r.goodLost, 0, `${r.phase}: good viewers lost frames`);
    assert.ok(churn!.edgeFds.peak > baseline!.edgeFds.start + 100, `the churn was real: ${churn!.edgeFds.peak} fds at its peak`);
    assert.ok(settled!.edgeFds.end <= baseline!.edgeFds.start + 3, `open files back to ${settled!.edgeFds.end} (baseline ${baseline!.edgeFds.start})`);
    assert.ok(
      settled!.edgeHeapMb.end < baseline!.edgeHeapMb.peak + 30,
      `heap ${settled!.edgeHeapMb.end} MB after, ${baseline!.edgeHeapMb.peak} MB at the baseline's peak`,
    );
  },
);
