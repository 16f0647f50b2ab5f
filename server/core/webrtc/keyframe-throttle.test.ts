import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { KeyframeThrottle } from './keyframe-throttle.ts';

test('keyframe requests: the first goes at once, those inside the window become one sent when it ends, and close drops a request still due', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let now = 0;
    const sent: number[] = [];
    const throttle = new KeyframeThrottle(
      1000,
      () => sent.push(now),
      () => now,
    );
    throttle.request();
    assert.deepEqual(sent, [0]);
    now = 200;
    throttle.request();
    now = 300;
    throttle.request();
    assert.deepEqual(sent, [0], 'none inside the window');
    now = 1000;
    mock.timers.tick(800);
    assert.deepEqual(sent, [0, 1000], 'one when the window ends, for both');
    now = 2500;
    throttle.request();
    assert.deepEqual(sent, [0, 1000, 2500], 'after a quiet window: at once');
    now = 2600;
    throttle.request();
    throttle.close();
    now = 4000;
    mock.timers.tick(1500);
    assert.deepEqual(sent, [0, 1000, 2500], 'closed: nothing more');
  } finally {
    mock.timers.reset();
  }
});
