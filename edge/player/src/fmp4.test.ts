import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FlvFrameReader } from '../../../server/core/media/flv/flv-frame-reader.ts';
import type { Frame } from '../../../server/core/media/frame.ts';
import { Fmp4Muxer, fragmentBytes } from '../../../server/core/media/mp4/fmp4-muxer.ts';
import { AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID } from '../../../server/core/media/mp4/init-segment.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../../../test/helpers/flv-file.ts';
import { presentationTime, readPrft, startsWithKeyframe } from './fmp4.ts';

const INGEST_EPOCH_MS = 1_700_000_000_000;

/** The OBS-like fixture (B-frames, AAC) as the edge muxes it: one fragment per video frame, as the browser receives it. */
function fixture() {
  const reader = new FlvFrameReader();
  const frames: Frame[] = readFlvFile(FIXTURE_OBS_LIKE).flatMap((t) => reader.push(t.type, t.timestamp, t.body, INGEST_EPOCH_MS + t.timestamp) ?? []);
  const first = frames.findIndex((f) => f.track === 'video');
  const init = frames[first]!.init;
  const muxer = new Fmp4Muxer(init, { headroom: 16 });
  const fragments = frames.slice(first).flatMap((f) => {
    const fragment = muxer.push(f);
    if (!fragment) return [];
    // What the player's WebSocket hands it: the fragment's bytes in an ArrayBuffer of their own.
    const bytes = fragmentBytes(fragment);
    const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return [{ frame: f, data }];
  });
  return { fragments, timescales: { [VIDEO_TRACK_ID]: VIDEO_TIMESCALE, [AUDIO_TRACK_ID]: init.audio!.sampleRate } };
}

describe("the player's fMP4 reading, against the muxer's output", () => {
  const { fragments, timescales } = fixture();

  test("each fragment starts with a prft: the video track, the ingest wall clock and its frame's presentation time", () => {
    assert.ok(fragments.length > 50);
    for (const { frame, data } of fragments) {
      const prft = readPrft(data);
      assert.ok(prft, 'a prft box first');
      assert.equal(prft.track, VIDEO_TRACK_ID);
      assert.ok(Math.abs(prft.wall - frame.receivedAt) < 1, `wall clock ${prft.wall} against ${frame.receivedAt}`);
      assert.ok(Math.abs(presentationTime(data, timescales)! - prft.ticks / VIDEO_TIMESCALE) < 1e-9);
    }
    // The media time is the frame's presentation time: with B-frames, not in decode order.
    const times = fragments.map(({ data }) => readPrft(data)!.ticks);
    const pts = fragments.map(({ frame }) => frame.dts + frame.cto);
    assert.deepEqual(
      times.map((t) => t - times[0]!),
      pts.map((p) => p - pts[0]!),
      "media times are the frames' presentation times",
    );
    assert.ok(
      pts.some((p, i) => i > 0 && p < pts[i - 1]!),
      'B-frames: presentation order differs from decode order',
    );
  });

  test('exactly the fragments that start at a keyframe are seen as keyframes (B-frames around them included)', () => {
    const seen = fragments.map(({ data }) => startsWithKeyframe(data));
    const expected = fragments.map(({ frame }) => frame.keyframe);
    assert.deepEqual(seen, expected);
    assert.ok(expected.filter(Boolean).length >= 1 && expected.some((k) => !k));
  });

  test('bytes that are not a fragment are read as nothing, without throwing', () => {
    assert.equal(readPrft(new ArrayBuffer(8)), undefined);
    assert.equal(readPrft(new Uint8Array(40).buffer), undefined);
    assert.equal(startsWithKeyframe(new Uint8Array([0, 0, 0, 200, 0x6d, 0x6f, 0x6f, 0x66]).buffer), false, 'a box that overruns');
    assert.equal(presentationTime(new ArrayBuffer(4), timescales), undefined);
  });
});
