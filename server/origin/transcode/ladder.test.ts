import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AUDIO_RUNG, ffmpegArgs, planLadder, rungToShed, webrtcRung, type Rung } from './ladder.ts';

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

  test('an audio-only source gets the audio rung alone: its AAC copied, Opus beside it, no video ladder', () => {
    const aac = { codec: 'aac' as const, config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 };
    const ladder = [rung('720p', 720, 3), rung('360p', 360, 2)];
    const plan = planLadder(ladder, { audio: aac, metadata: {} });
    assert.deepEqual(plan.rungs, [AUDIO_RUNG]);
    assert.deepEqual(
      plan.skipped.map((s) => s.name),
      ['720p', '360p'],
    );
    assert.equal(webrtcRung(plan.rungs), AUDIO_RUNG, 'the audio rung is the WebRTC one');
    const args = ffmpegArgs(plan.rungs, { gopSeconds: 1, hasAudio: true, opusKbps: 64 }).join(' ');
    assert.match(args, /-map 0:a:0 -vn -c:a copy .* -f flv pipe:3 .*-c:a libopus .* -f ogg pipe:4$/);
    assert.doesNotMatch(args, /0:v|libx264/);
    const fromOpus = ffmpegArgs(plan.rungs, { gopSeconds: 1, hasAudio: true, opusKbps: 64, input: 'matroska' }).join(' ');
    assert.match(fromOpus, /-map 0:a:0 -vn -c:a aac -b:a 128k/, 'an Opus source is encoded to AAC');
    assert.equal(planLadder(ladder, { metadata: {} }).passthroughOnly, 'the source has neither audio nor video');
  });
});
