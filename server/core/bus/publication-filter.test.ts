import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeEnd, encodeFrame, HEADER_SIZE } from './frame-codec.ts';
import { isRandomAccess, type Frame, type StreamInit } from '../media/frame.ts';
import { PublicationFilter, type Filtered } from './publication-filter.ts';

const init: StreamInit = {
  video: { codec: 'h264', config: Buffer.from('0164001fffe1', 'hex'), codecString: 'avc1.64001f', width: 1280, height: 720 },
  audio: { codec: 'aac', config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
  metadata: {},
};

function frame(dts: number, over: Partial<Frame> = {}): Frame {
  return { track: 'video', codec: 'h264', dts, cto: 0, keyframe: false, payload: Buffer.from([0, 0, 0, 1, 0x41]), receivedAt: 1, init, ...over };
}

/** The bus messages of one publication: `counter` numbers its frames from 0. */
function publication(token: number) {
  let counter = 0;
  return {
    key: (dts: number) => encodeFrame(frame(dts, { keyframe: true }), { counter: counter++, token }, true, 1 << 20)[0]!,
    delta: (dts: number) => encodeFrame(frame(dts), { counter: counter++, token }, false, 1 << 20)[0]!,
    audio: (dts: number) =>
      encodeFrame(frame(dts, { track: 'audio', codec: 'aac', payload: Buffer.from([0x21]) }), { counter: counter++, token }, false, 1 << 20)[0]!,
    end: () => encodeEnd({ counter: counter++, token }, 1),
    skip: (n: number) => (counter += n),
  };
}

const kinds = (out: Filtered[]) => out.map((o) => (o.kind === 'skip' ? o.reason : o.kind === 'frame' ? `${o.frame.track}@${o.frame.dts}` : 'end'));

describe('publication filter', () => {
  test('frames of one publication pass in order from the first keyframe; what comes before it waits', () => {
    const f = new PublicationFilter(12_000);
    const p = publication(5);
    const out = [p.delta(0), p.audio(1), p.key(3000), p.audio(3001), p.delta(6000)].map((m) => f.push(m, 0));
    assert.deepEqual(kinds(out), ['waiting-for-keyframe', 'waiting-for-keyframe', 'video@3000', 'audio@3001', 'video@6000']);
    assert.deepEqual(out[0]!.events, { newPublication: { token: 5 } }, 'the first message starts a publication');
    assert.equal(out[3]!.events, undefined, 'nothing to report on the common path');
    assert.equal(f.stats.frames, 5);
  });

  test('a gap in the counter is reported, and nothing passes until the next keyframe', () => {
    const f = new PublicationFilter(12_000);
    const p = publication(5);
    f.push(p.key(0), 0);
    p.skip(2);
    const out = [p.delta(9000), p.audio(9001), p.key(12000)].map((m) => f.push(m, 0));
    assert.deepEqual(kinds(out), ['waiting-for-keyframe', 'waiting-for-keyframe', 'video@12000']);
    assert.deepEqual(out[0]!.events, { gap: { expected: 1, got: 3 } });
    assert.equal(f.stats.gaps, 1);
  });

  test('a frame sent again after a NATS outage is dropped as a duplicate, with no gap', () => {
    const f = new PublicationFilter(12_000);
    const p = publication(5);
    const first = p.key(0);
    const second = p.delta(3000);
    assert.deepEqual(kinds([first, second, second, first, p.delta(6000)].map((m) => f.push(m, 0))), [
      'video@0',
      'video@3000',
      'duplicate',
      'duplicate',
      'video@6000',
    ]);
    assert.equal(f.stats.duplicates, 2);
    assert.equal(f.stats.gaps, 0);
  });

  test('an older publication is fenced off while the newest is alive, and accepted after a lease lifetime of silence', () => {
    const f = new PublicationFilter(12_000);
    const old = publication(5);
    const fresh = publication(9);
    f.push(old.key(0), 0);
    assert.deepEqual(f.push(fresh.key(100), 10).events, { newPublication: { token: 9 } });
    assert.deepEqual(kinds([f.push(old.delta(3000), 20)]), ['stale']);
    assert.equal(f.stats.staleDropped, 1);
    // The newest token silent for longer than a lease lives: the lower one is a new start (a rebuilt bucket).
    const late = f.push(old.key(6000), 10 + 12_001);
    assert.deepEqual(kinds([late]), ['video@6000']);
    assert.deepEqual(late.events, { tokenForgotten: { was: 9, now: 5 }, newPublication: { token: 5 } });
  });

  test('the end marker ends the publication; a restart under a new token starts at its keyframe', () => {
    const f = new PublicationFilter(12_000);
    const p = publication(5);
    const next = publication(6);
    assert.deepEqual(kinds([p.key(0), p.end(), next.delta(0), next.key(3000)].map((m) => f.push(m, 0))), [
      'video@0',
      'end',
      'waiting-for-keyframe',
      'video@3000',
    ]);
  });

  test('an unreadable message is reported with its reason, and the stream resumes at the next keyframe', () => {
    const f = new PublicationFilter(12_000);
    const p = publication(5);
    f.push(p.key(0), 0);
    const broken = Buffer.from(p.delta(3000));
    broken[0] = 99; // an unknown version
    const bad = f.push(broken, 0);
    assert.equal(bad.kind === 'skip' && bad.reason, 'invalid');
    assert.match(bad.events?.invalid ?? '', /not a version 1 frame/);
    assert.deepEqual(kinds([p.delta(6000), p.key(9000)].map((m) => f.push(m, 0))), ['waiting-for-keyframe', 'video@9000']);
    assert.equal(f.stats.badMessages, 1);
  });

  test('a frame split over several messages comes whole with its last part', () => {
    const f = new PublicationFilter(12_000);
    const big = frame(0, { keyframe: true, payload: Buffer.alloc(5000, 7) });
    const parts = encodeFrame(big, { counter: 0, token: 5 }, true, HEADER_SIZE + 1500);
    assert.ok(parts.length > 2);
    const out = parts.map((m) => f.push(m, 0));
    assert.deepEqual(kinds(out).slice(0, -1), Array<string>(parts.length - 1).fill('partial'));
    const last = out.at(-1)!;
    assert.ok(last.kind === 'frame' && last.frame.payload.equals(big.payload));
  });

  test('an audio-only publication starts at its first frame and, after a gap, resumes at the next one (each carries the init)', () => {
    const radio: StreamInit = { audio: init.audio, metadata: {} };
    const f = new PublicationFilter(12_000);
    let counter = 0;
    const audio = (dts: number) => {
      const a = frame(dts, { track: 'audio', codec: 'aac', keyframe: true, payload: Buffer.from([0x21]), init: radio });
      return encodeFrame(a, { counter: counter++, token: 7 }, isRandomAccess(a), 1 << 20)[0]!;
    };
    assert.deepEqual(kinds([audio(0), audio(1920)].map((m) => f.push(m, 0))), ['audio@0', 'audio@1920']);
    counter += 3;
    const out = f.push(audio(9600), 0);
    assert.equal(kinds([out])[0], 'audio@9600');
    assert.deepEqual(out.events, { gap: { expected: 2, got: 5 } });
    assert.equal(out.kind === 'frame' && out.frame.init.video, undefined);
  });

  test('audio of a stream with video is no place to start, even before the video configuration came, when the metadata announces video', () => {
    const aac = (over: Partial<StreamInit>) => frame(0, { track: 'audio', codec: 'aac', keyframe: true, init: { audio: init.audio, metadata: {}, ...over } });
    assert.equal(isRandomAccess(aac({})), true, 'audio only');
    assert.equal(isRandomAccess(aac({ video: init.video })), false, 'audio and video');
    assert.equal(isRandomAccess(aac({ metadata: { videocodecid: 7 } })), false, 'video announced by onMetaData');
    assert.equal(isRandomAccess(aac({ metadata: { width: 1280 } })), false, 'a picture size announced');
    assert.equal(
      isRandomAccess(frame(0, { track: 'audio', codec: 'opus', init: { audio: init.audio, opus: init.audio, metadata: {} } })),
      false,
      'Opus beside AAC',
    );
    assert.equal(isRandomAccess(frame(0, { keyframe: true })), true, 'a video keyframe');
    assert.equal(isRandomAccess(frame(0)), false, 'a video delta');
  });
});
