import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ffmpegArgs, rungToShed, webrtcRung, type Rung } from './ladder.ts';

const rung = (name: string, height: number, priority: number): Rung => ({ name, height, videoKbps: 1000, audioKbps: 64, priority, preset: 'veryfast' });

describe('ladder plan', () => {
  test('sheds the lowest priority first, and of equal priorities the tallest (the most expensive)', () => {
    assert.equal(rungToShed([rung('720p', 720, 3), rung('480p', 480, 1), rung('360p', 360, 2)])!.name, '480p');
    assert.equal(rungToShed([rung('720p', 720, 1), rung('480p', 480, 1)])!.name, '720p');
    assert.equal(rungToShed([]), undefined);
  });

  test("puts Opus on the highest rung, the stream's WebRTC rendition, as one more Ogg output", () => {
    const rungs = [rung('360p', 360, 2), rung('720p', 720, 3)];
    assert.equal(webrtcRung(rungs)!.name, '720p');
    const args = ffmpegArgs(rungs, { gopSeconds: 2, hasAudio: true, opusKbps: 64 });
    assert.deepEqual(args.slice(-3), ['-f', 'ogg', 'pipe:5']);
    assert.ok(args.includes('libopus'));
    assert.ok(!ffmpegArgs(rungs, { gopSeconds: 2, hasAudio: true, opusKbps: 0 }).includes('libopus'), 'opusKbps 0: no Opus');
    assert.ok(!ffmpegArgs(rungs, { gopSeconds: 2, hasAudio: false, opusKbps: 64 }).includes('libopus'), 'no audio: no Opus');
  });
});
