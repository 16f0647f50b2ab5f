import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RecordingMeta } from '../server/core/recording/model.ts';
import { retentionVictims } from './recorder.ts';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-12-06T12:00:00Z');

function recording(id: string, endedHoursAgo: number, bytes: number, status: RecordingMeta['status'] = 'complete'): RecordingMeta {
  const end = NOW - endedHoursAgo * HOUR;
  return {
    id,
    stream: 'cam',
    token: 1,
    startedAt: new Date(end - HOUR).toISOString(),
    endedAt: status === 'complete' ? new Date(end).toISOString() : undefined,
    status,
    renditions: ['source'],
    durationS: 3600,
    bytes,
    gaps: 0,
    mp4: status === 'complete' ? { file: `${id}.mp4`, bytes, rendition: 'source' } : undefined,
  };
}

describe('recording retention', () => {
  const all = [recording('a', 50, 100), recording('b', 30, 100), recording('c', 2, 100), recording('live', 0, 500, 'recording')];

  test('no limits: nothing is deleted', () => {
    assert.deepEqual(retentionVictims(all, NOW, { maxAgeHours: 0, maxTotalBytes: 0 }), []);
  });

  test('by age: complete recordings that ended longer ago than the limit', () => {
    assert.deepEqual(retentionVictims(all, NOW, { maxAgeHours: 24, maxTotalBytes: 0 }), ['a', 'b']);
  });

  test('by size: the oldest complete ones go while all of them (MP4s included) take more than the limit; a recording being made stays', () => {
    // 200 + 200 + 200 + 500 = 1100 bytes.
    assert.deepEqual(retentionVictims(all, NOW, { maxAgeHours: 0, maxTotalBytes: 800 }), ['a', 'b']);
    assert.deepEqual(retentionVictims(all, NOW, { maxAgeHours: 0, maxTotalBytes: 100 }), ['a', 'b', 'c']);
  });
});
