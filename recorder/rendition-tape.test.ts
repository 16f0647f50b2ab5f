import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeEnd, encodeFrame } from '../server/core/bus/frame-codec.ts';
import type { Frame, StreamInit } from '../server/core/media/frame.ts';
import type { RecordedSegment } from './recording-track.ts';
import { RenditionTape, type TapeEvent } from './rendition-tape.ts';

const init: StreamInit = {
  video: { codec: 'h264', config: Buffer.from('0164001fffe1', 'hex'), codecString: 'avc1.64001f', width: 1280, height: 720 },
  audio: { codec: 'aac', config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
  metadata: { framerate: 30 },
};
const FRAME = 3000; // 90 kHz ticks at 30 fps
const AAC = 1920; // 1024 samples at 48 kHz

interface Message {
  seq: number;
  data: Buffer;
}

/**
 * The bus messages of an OBS-like publication: 30 fps video with B-frames (composition offsets), a keyframe every
 * `gop` frames, AAC every 21.3 ms interleaved by decode time; sequence numbers as a JetStream stream would give.
 * `more()` goes on with the same publication (its counter and clock), with another init if given.
 */
function publication(token: number, seconds: number, options: { gop?: number; firstSeq?: number; bigKeyframes?: boolean } = {}) {
  const { gop = 60, firstSeq = 1 } = options;
  const messages: Message[] = [];
  let counter = 0;
  let seq = firstSeq;
  let frame = 0;
  let audioDts = 0;
  const push = (f: Frame, withInit: boolean) => {
    for (const data of encodeFrame(f, { counter: counter++, token }, withInit, 4096)) messages.push({ seq: seq++, data });
  };
  const more = (secs: number, stream: StreamInit = init) => {
    const until = frame + Math.round(secs * 30);
    for (const first = frame; frame < until; frame++) {
      const dts = frame * FRAME;
      while (audioDts <= dts) {
        const payload = Buffer.alloc(20, (audioDts / AAC) & 0xff);
        push({ track: 'audio', codec: 'aac', dts: audioDts, cto: 0, keyframe: false, payload, receivedAt: 1e12 + audioDts / 90, init: stream }, false);
        audioDts += AAC;
      }
      const keyframe = (frame - first) % gop === 0;
      const size = keyframe && options.bigKeyframes ? 10_000 : 200;
      const payload = Buffer.alloc(size, frame & 0xff);
      payload.writeUInt32BE(size - 4, 0);
      const f: Frame = {
        track: 'video',
        codec: 'h264',
        dts,
        cto: keyframe ? 0 : (frame % 3) * FRAME,
        keyframe,
        payload,
        receivedAt: 1e12 + dts / 90,
        init: stream,
      };
      push(f, keyframe);
    }
  };
  more(seconds);
  return {
    messages,
    more,
    end: (): Message => ({ seq: seq++, data: encodeEnd({ counter: counter++, token }, 1e12 + frame * 33.3) }),
  };
}

/** Runs messages through a tape; positions are sequence numbers. */
function run(tape: RenditionTape<number>, messages: readonly Message[]): TapeEvent<number>[] {
  return messages.flatMap((m) => tape.push(m.data, m.seq, 0));
}

const segmentsOf = (events: TapeEvent<number>[]) => events.flatMap((e) => (e.kind === 'segment' ? [e.segment] : []));
/**
 * A segment's bytes with each fragment's sequence number (mfhd) zeroed: a resumed muxer counts its fragments from 1
 * again. Players and ffmpeg time samples by tfdt and trun, never by it; everything else must be equal.
 */
function media(s: RecordedSegment<number>): Buffer {
  const out = Buffer.concat(s.chunks);
  let p = 0;
  for (const chunk of s.chunks) {
    assert.equal(out.toString('latin1', p + 4, p + 8), 'prft');
    assert.equal(out.toString('latin1', p + 36, p + 40), 'moof');
    assert.equal(out.toString('latin1', p + 44, p + 48), 'mfhd');
    out.writeUInt32BE(0, p + 52);
    p += chunk.length;
  }
  return out;
}

describe('a rendition recorded from the bus (the recorder tape)', () => {
  test('segments start at keyframes after the segment length, and hold every frame exactly once', () => {
    const pub = publication(7, 10);
    const events = run(new RenditionTape(4, 10_000), [...pub.messages, pub.end()]);
    assert.equal(events[0]?.kind, 'begin');
    assert.equal(events[1]?.kind, 'init');
    const segments = segmentsOf(events);
    // A keyframe every 2 s, 4 s segments: 0-4, 4-8, 8-10.
    assert.deepEqual(
      segments.map((s) => [s.index, s.start / 90_000, Math.round(s.duration * 1000) / 1000]),
      [
        [0, 0, 4],
        [1, 4, 4],
        [2, 8, 2],
      ],
    );
    assert.equal(
      segments.reduce((n, s) => n + s.videoFrames, 0),
      300,
    );
    const audio = pub.messages.filter((m) => m.data[1] === 2).length;
    assert.equal(
      segments.reduce((n, s) => n + s.audioFrames, 0),
      audio - 1,
      'every AAC frame from the first keyframe on (the one at 0 was sent before it), those after the last video frame included',
    );
    assert.deepEqual(events.at(-1), { kind: 'end', ack: pub.messages.length + 1 });
    assert.ok(segments.every((s) => !s.discontinuity));
  });

  test('a tape resumed after any stored segment, from its acknowledged position, writes what one never stopped would have', () => {
    const pub = publication(7, 12, { bigKeyframes: true }); // keyframes split over several messages
    const all = [...pub.messages, pub.end()];
    const whole = segmentsOf(run(new RenditionTape(2, 10_000), all));
    assert.equal(whole.length, 6);
    for (let k = 0; k < whole.length - 1; k++) {
      const stored = whole[k]!;
      assert.ok(stored.resume && stored.ack !== undefined, `segment ${k} says where to resume`);
      // The acknowledgement reached the server (redelivery after it), or was lost (redelivery after the one before).
      for (const from of [stored.ack, whole[k - 1]?.ack ?? 0]) {
        const tape = new RenditionTape<number>(2, 10_000);
        tape.resumeAt(stored.resume, 0);
        const again = segmentsOf(
          run(
            tape,
            all.filter((m) => m.seq > from),
          ),
        );
        assert.equal(again.length, whole.length - k - 1, `after segment ${k}, from ${from}`);
        for (const [i, s] of again.entries()) {
          const expected = whole[k + 1 + i]!;
          assert.equal(s.index, i);
          assert.ok(media(s).equals(media(expected)), `segment ${k + 1 + i} byte for byte, resumed after ${k} from ${from}`);
          assert.equal(s.duration, expected.duration);
          assert.equal(s.discontinuity, false);
        }
      }
    }
  });

  test('frames missing on the bus close the segment and the next follows a discontinuity, never glued on', () => {
    const pub = publication(7, 9);
    // Frames from 3.0 s to 3.5 s never reach the recorder (a bus outage).
    const lostFrom = pub.messages.findIndex((m) => m.data[1] === 1 && m.data.readDoubleBE(16) >= 3 * 90_000);
    const lostTo = pub.messages.findIndex((m) => m.data[1] === 1 && m.data.readDoubleBE(16) >= 3.5 * 90_000);
    const tape = new RenditionTape<number>(2, 10_000);
    const segments = segmentsOf(run(tape, [...pub.messages.slice(0, lostFrom), ...pub.messages.slice(lostTo), pub.end()]));
    assert.equal(tape.gaps, 1);
    assert.deepEqual(
      segments.map((s) => [s.start / 90_000, Math.round(s.duration * 1000) / 1000, s.discontinuity]),
      [
        [0, 2, false],
        [2, 1, false], // closed at the gap: it runs to the end of its last frame
        [4, 2, true], // the next keyframe, at its own time, after EXT-X-DISCONTINUITY
        [6, 2, false],
        [8, 1, false],
      ],
    );
    assert.equal(
      segments.reduce((n, s) => n + s.videoFrames, 0),
      270 - 15 - 15,
      'the 15 frames lost, and the 15 after them that cannot be decoded without their keyframe',
    );
  });

  test('the end marker ends the recording; a publication with a higher token begins a new one, with no end marker before', () => {
    const one = publication(7, 3);
    const two = publication(9, 3, { firstSeq: 5000 });
    const events = run(new RenditionTape(2, 10_000), [...one.messages, ...two.messages, two.end()]);
    const kinds = events.map((e) => (e.kind === 'begin' ? `begin ${e.token}` : e.kind === 'end' ? `end ${e.ack ?? '-'}` : e.kind));
    const endSeq = 5000 + two.messages.length;
    assert.deepEqual(kinds, ['begin 7', 'init', 'segment', 'segment', 'end -', 'begin 9', 'init', 'segment', 'segment', `end ${endSeq}`]);
  });

  test('a new codec configuration starts a segment with its own init, after a discontinuity', () => {
    const other: StreamInit = { ...init, video: { ...init.video!, width: 640, height: 360, config: Buffer.from('0164001effe1', 'hex') } };
    const pub = publication(7, 3);
    pub.more(3, other);
    const events = run(new RenditionTape(2, 10_000), [...pub.messages, pub.end()]);
    const summary = events.flatMap((e) =>
      e.kind === 'init'
        ? [`init ${e.id}`]
        : e.kind === 'segment'
          ? [`${e.segment.start / 90_000}s init ${e.segment.initId}${e.segment.discontinuity ? ' after a discontinuity' : ''}`]
          : [],
    );
    assert.deepEqual(summary, ['init 1', '0s init 1', '2s init 1', 'init 2', '3s init 2 after a discontinuity', '5s init 2']);
  });
});
