import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClockMap } from './latency.ts';

test('a WebRTC picture is timed by its RTP timestamp against the socket prft entries, across a 32-bit wrap and either side of the entry', () => {
  const clock = new ClockMap();
  assert.equal(clock.wallClockAtRtp(123), undefined, 'no entry, no figure');
  // A picture at 1000 s of media time (90 kHz ticks 90,000,000) ingested at wall-clock 1,700,000,000,000 ms.
  clock.add(1000, 1_700_000_000_000);
  assert.equal(clock.wallClockAtRtp(90_000_000 + 9000), 1_700_000_000_100, '100 ms later');
  assert.equal(clock.wallClockAtRtp(90_000_000 - 4500), 1_699_999_999_950, '50 ms earlier');
  // Past 2^32 ticks (13.25 hours): the RTP timestamp has wrapped, the media time has not.
  const media = 2 ** 32 / 90_000 - 0.5; // half a second before the wrap
  clock.add(media, 1_800_000_000_000);
  assert.equal(Math.round(clock.wallClockAtRtp(90_000 / 2)!), 1_800_000_001_000, 'half a second after the wrap: a second after the entry');
});
