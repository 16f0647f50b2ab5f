import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AbrController, autoRenditions, type AbrRendition } from './abr.ts';

const LADDER: AbrRendition[] = [
  { name: 'source', kbps: 4000 },
  { name: '720p', kbps: 2600 },
  { name: '480p', kbps: 1300 },
  { name: '360p', kbps: 760 },
];

/** Drives the controller through `seconds` of ticks every 250 ms; returns the switches it asked for. */
function run(
  abr: AbrController,
  start: { t: number; bytes: number; current: string; media?: number },
  seconds: number,
  link: (t: number) => { kbps: number; latencyMs: number; stalled?: boolean; arrival?: number },
) {
  const switches: string[] = [];
  for (let i = 0; i < seconds * 4; i++) {
    start.t += 250;
    const l = link(start.t);
    start.bytes += (l.kbps * 250) / 8;
    start.media = (start.media ?? 0) + 0.25 * (l.arrival ?? 1);
    const next = abr.decide(
      { now: start.t, bytes: start.bytes, latencyMs: l.latencyMs, stalled: l.stalled ?? false, switching: false, receivedS: start.media },
      LADDER,
      start.current,
    );
    if (next) {
      switches.push(next);
      start.current = next;
    }
  }
  return switches;
}

describe('adaptive bitrate', () => {
  test('chooses among transcoded renditions only (seamless switches), the source when it is alone', () => {
    assert.deepEqual(
      autoRenditions(LADDER).map((r) => r.name),
      ['720p', '480p', '360p'],
    );
    assert.deepEqual(
      autoRenditions([{ name: 'source', kbps: 3000 }]).map((r) => r.name),
      ['source'],
    );
  });

  test('starts at the highest rendition that fits the last known rate', () => {
    const abr = new AbrController();
    assert.equal(abr.initial(LADDER), '480p', 'unknown: 80% of the 2000 kbit/s guess');
    assert.equal(abr.initial(LADDER, 5000), '720p');
    assert.equal(abr.initial(LADDER, 300), '360p', 'nothing fits: the lowest');
  });

  test('a congested link (late data, latency rising) goes down to what fits the measured rate, within about a second', () => {
    const abr = new AbrController();
    const s = { t: 0, bytes: 0, current: '720p' };
    assert.deepEqual(
      run(abr, s, 10, () => ({ kbps: 2600, latencyMs: 600 })),
      [],
      'healthy at the top: stays',
    );
    let latency = 600;
    const t0 = s.t;
    // The link drops to 1000 kbit/s: the 720p data arrives ever later.
    const switches = run(abr, s, 6, () => ({ kbps: 1000, latencyMs: (latency += 150) }));
    assert.deepEqual(switches, ['360p'], '80% of 1000 kbit/s fits 360p, not 480p');
    assert.ok(abr.log[0]![0] - t0 <= 2500, `went down after ${abr.log[0]![0] - t0} ms`);
    assert.match(abr.log[0]![3], /behind and rising, 1\d\d\d kbit\/s arriving/);
  });

  test('media arriving at 40% of real time goes down before the buffer runs dry, within about a second', () => {
    const abr = new AbrController();
    const s = { t: 0, bytes: 0, current: '720p' };
    assert.deepEqual(
      run(abr, s, 10, () => ({ kbps: 2600, latencyMs: 500 })),
      [],
      'healthy at the top: stays',
    );
    const t0 = s.t;
    // Latency has not grown yet (the 0.4 s buffer still plays): only the arrival rate tells.
    const switches = run(abr, s, 3, () => ({ kbps: 1040, latencyMs: 500, arrival: 0.4 }));
    assert.deepEqual(switches, ['360p'], '80% of the rate arriving fits 360p');
    assert.ok(abr.log[0]![0] - t0 <= 1250, `went down after ${abr.log[0]![0] - t0} ms`);
    assert.match(abr.log[0]![3], /media arriving at 0\.[3-6]\dx real time/);
  });

  test('a hiccup of half a second in arrivals, caught up at once, is not trouble', () => {
    const abr = new AbrController();
    const s = { t: 0, bytes: 0, current: '720p' };
    assert.deepEqual(
      run(abr, s, 5, () => ({ kbps: 2600, latencyMs: 500 })),
      [],
    );
    const start = s.t;
    // Nothing for 500 ms, then the missed media in one burst.
    const arrival = (t: number) => (t - start <= 500 ? 0 : t - start <= 750 ? 3 : 1);
    assert.deepEqual(
      run(abr, s, 5, (t) => ({ kbps: 2600, latencyMs: 500, arrival: arrival(t) })),
      [],
    );
  });

  test('a stall goes one down even before the rate is known', () => {
    const abr = new AbrController();
    const s = { t: 0, bytes: 0, current: '720p' };
    assert.deepEqual(
      run(abr, s, 1.5, () => ({ kbps: 0, latencyMs: 500, stalled: true })),
      ['480p'],
    );
  });

  test('high latency that is falling (catching up after a switch) is not trouble', () => {
    const abr = new AbrController();
    const s = { t: 0, bytes: 0, current: '480p' };
    let latency = 2400;
    assert.deepEqual(
      run(abr, s, 4, () => ({ kbps: 1300, latencyMs: (latency -= 60) })),
      [],
    );
  });

  test('healthy for the hold time: tries one higher; a try that fails doubles the hold', () => {
    const abr = new AbrController({ holdMs: 8000 });
    const s = { t: 0, bytes: 0, current: '360p' };
    assert.deepEqual(
      run(abr, s, 7, () => ({ kbps: 760, latencyMs: 600 })),
      [],
      'not before the hold',
    );
    assert.deepEqual(
      run(abr, s, 2, () => ({ kbps: 760, latencyMs: 600 })),
      ['480p'],
    );
    // 480p does not fit: latency climbs, down again, and the next try waits twice as long.
    let latency = 600;
    assert.deepEqual(
      run(abr, s, 8, () => ({ kbps: 900, latencyMs: (latency += 120) })),
      ['360p'],
    );
    assert.equal(abr.hold, 16000);
    assert.deepEqual(
      run(abr, s, 15, () => ({ kbps: 760, latencyMs: 600 })),
      [],
      'waits the doubled hold',
    );
    assert.deepEqual(
      run(abr, s, 2, () => ({ kbps: 760, latencyMs: 600 })),
      ['480p'],
    );
    // This time it holds: after a while the base hold applies again, and it climbs on.
    assert.deepEqual(
      run(abr, s, 30, () => ({ kbps: 1300, latencyMs: 600 })),
      ['720p'],
    );
    assert.equal(abr.hold, 8000);
  });

  test('makes no decision while a switch is in progress', () => {
    const abr = new AbrController();
    for (let t = 250; t < 5000; t += 250)
      assert.equal(abr.decide({ now: t, bytes: t * 10, latencyMs: 5000 + t, stalled: true, switching: true }, LADDER, '720p'), undefined);
  });
});
