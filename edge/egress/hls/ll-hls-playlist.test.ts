import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import HLS from 'hls-parser';

// A playlist hls-parser finds invalid fails the test (by default it only prints why).
HLS.setOptions({ strictMode: true });
import type { Fragment } from '../../../server/core/media/mp4/fmp4-muxer.ts';
import { LlHlsPlaylist, type LlHlsOptions } from './ll-hls-playlist.ts';

const OPTIONS: LlHlsOptions = { partTargetS: 0.33334, segmentMinS: 1, liveSegments: 6, dvrWindowS: 0, maxBytes: 64 << 20 };
const FRAME = 3000; // 30 fps in 90 kHz ticks
const EPOCH = Date.UTC(2026, 11, 6, 12, 0, 0);

/** Frame n of a 30 fps stream with a keyframe every `gop` frames; its bytes say which frame it is. */
function fragment(n: number, gop = 30, offset = 0): Fragment {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(n, 4);
  const buffer = Buffer.concat([Buffer.alloc(4), body]); // 4 bytes of headroom, as the muxer leaves for WebSocket headers
  return { buffer, offset: 4, keyframe: n % gop === 0, receivedAt: EPOCH + (n * 1000) / 30, time: offset + n * FRAME };
}

function feed(playlist: LlHlsPlaylist, from: number, to: number, gop = 30): void {
  for (let n = from; n < to; n++) playlist.push(fragment(n, gop));
}

const framesIn = (data: Buffer) => Array.from({ length: data.length / 8 }, (_, i) => data.readUInt32BE(i * 8 + 4));

describe('LL-HLS media playlist (pure)', () => {
  test("parts never exceed PART-TARGET and all but a segment's last reach 85% of it; segments start at keyframes; numbering is consecutive", () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    feed(p, 0, 30 * 5 + 7);
    const parsed = HLS.parse(p.render()) as HLS.types.MediaPlaylist;
    assert.equal(parsed.targetDuration, 1);
    assert.equal(parsed.partTargetDuration, 0.33334);
    assert.equal(parsed.mediaSequenceBase, 0);
    const complete = parsed.segments.filter((s) => s.uri);
    assert.deepEqual(
      complete.map((s) => s.mediaSequenceNumber),
      [0, 1, 2, 3, 4],
    );
    for (const s of complete) assert.ok(Math.abs(s.duration - 1) < 1e-6, `segment ${s.mediaSequenceNumber}: ${s.duration} s (a GOP)`);
    for (const s of parsed.segments) {
      const parts = (s.parts ?? []).filter((part) => !part.hint);
      parts.forEach((part, i) => {
        const duration = part.duration ?? NaN;
        assert.ok(duration <= 0.33334 + 1e-9, `part ${s.mediaSequenceNumber}.${i}: ${duration}`);
        if (i < parts.length - 1 || s.uri) assert.ok(duration >= 0.85 * 0.33334, `part ${s.mediaSequenceNumber}.${i}: ${duration}`);
        assert.equal(Boolean(part.independent), i === 0, "only a segment's first part starts with a keyframe");
        assert.equal(part.uri, `${s.mediaSequenceNumber}.${i}.m4s`);
      });
    }
    // The open segment (frames 150-156) has no complete part yet: the hint is its first.
    assert.deepEqual(p.lastPart, [4, 2]);
    assert.deepEqual(p.nextPart, [5, 0]);
    assert.equal(parsed.prefetchSegments.length, 0);
    assert.match(p.render(), /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="5\.0\.m4s"\n/);
    assert.match(p.render(), /#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1\.00002,CAN-SKIP-UNTIL=6\.00000\n/);
    assert.equal(parsed.lowLatencyCompatibility?.canBlockReload, true);
  });

  test('parts and segments carry exactly their frames, in one shared buffer each', () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    feed(p, 0, 61);
    assert.deepEqual(framesIn(p.part(0, 0).data!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(framesIn(p.part(0, 2).data!), [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
    assert.deepEqual(
      framesIn(p.segment(1)!),
      Array.from({ length: 30 }, (_, i) => 30 + i),
    );
    assert.equal(p.part(0, 0).data, p.part(0, 0).data, 'the same buffer for every request');
    assert.equal(p.segment(2), undefined, 'the open segment is not served whole');
    assert.deepEqual(p.part(2, 0), { state: 'pending' }, 'the part being made');
    assert.deepEqual(p.part(2, 1), { state: 'pending' }, 'and the one after it');
    assert.deepEqual(p.part(3, 0), { state: 'pending' }, "the next segment's first part");
    assert.deepEqual(p.part(2, 5), { state: 'gone' });
    assert.deepEqual(p.part(9, 0), { state: 'gone' });
  });

  test('blocking reload: a request is ready once its part exists, pending before, and 400-worthy more than two segments ahead', () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    feed(p, 0, 40); // segment 0 complete (3 parts), segment 1 open: part 0 closed at frame 40
    assert.equal(p.playlistState(1, 0), 'pending', 'part 1.0 closes when the frame after it comes');
    p.push(fragment(40));
    assert.equal(p.playlistState(1, 0), 'ready');
    assert.equal(p.playlistState(1, 1), 'pending');
    assert.equal(p.playlistState(0, 2), 'ready');
    assert.equal(p.playlistState(0, 7), 'ready', 'a part past the end of segment 0 means part 0 of segment 1');
    assert.equal(p.playlistState(0, undefined), 'ready');
    assert.equal(p.playlistState(2, 0), 'pending');
    assert.equal(p.playlistState(3, 0), 'pending');
    assert.equal(p.playlistState(4, 0), 'too-far');
    const before = p.version;
    feed(p, 41, 51);
    assert.ok(p.version > before, 'changes bump the version (blocked requests wake)');
    assert.equal(p.playlistState(1, 1), 'ready');
  });

  test('a new publication: EXT-X-DISCONTINUITY and a new EXT-X-MAP; as the window slides the discontinuity sequence counts it', () => {
    const p = new LlHlsPlaylist({ ...OPTIONS, liveSegments: 3 });
    p.init(Buffer.from('first'));
    feed(p, 0, 60);
    p.init(Buffer.from('second'));
    // The new publication's clock starts over.
    for (let n = 0; n < 61; n++) p.push(fragment(n, 30, 0));
    let text = p.render();
    let parsed = HLS.parse(text) as HLS.types.MediaPlaylist;
    const complete = parsed.segments.filter((s) => s.uri);
    assert.deepEqual(
      complete.map((s) => [s.mediaSequenceNumber, Boolean(s.discontinuity), s.map?.uri]),
      [
        [1, false, 'init-1.mp4'],
        [2, true, 'init-2.mp4'],
        [3, false, 'init-2.mp4'],
      ],
    );
    assert.equal(parsed.discontinuitySequenceBase, 0);
    assert.equal(p.initSegment(2)!.toString(), 'second');
    feed(p, 61, 91);
    text = p.render();
    parsed = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(parsed.mediaSequenceBase, 2);
    assert.equal(parsed.discontinuitySequenceBase, 1, 'the discontinuity before segment 2 is counted');
    assert.ok(!/^#EXT-X-DISCONTINUITY$/m.test(text), 'and not repeated on the first segment');
    assert.equal(p.initSegment(1), undefined, 'an init no segment needs is freed');
  });

  test('delta updates: _HLS_skip replaces segments older than CAN-SKIP-UNTIL with EXT-X-SKIP, and the MAP in effect is repeated', () => {
    const p = new LlHlsPlaylist({ ...OPTIONS, liveSegments: 12 });
    p.init(Buffer.from('init'));
    feed(p, 0, 30 * 11 + 5);
    const full = HLS.parse(p.render()) as HLS.types.MediaPlaylist;
    const delta = p.render({ skip: true });
    assert.match(delta, /#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXT-X-MAP:URI="init-1\.mp4"\n/);
    const parsed = HLS.parse(delta) as HLS.types.MediaPlaylist;
    assert.equal(parsed.skip, 5);
    assert.equal(parsed.segments.filter((s) => s.uri).length, full.segments.filter((s) => s.uri).length - 5);
    // What remains starts within the last 6 target durations.
    assert.equal(parsed.segments[0]!.mediaSequenceNumber, 5);
  });

  test('parts are listed for the last three target durations only, and their memory goes after that', () => {
    const p = new LlHlsPlaylist({ ...OPTIONS, liveSegments: 10 });
    p.init(Buffer.from('init'));
    feed(p, 0, 30 * 8 + 1);
    const parsed = HLS.parse(p.render()) as HLS.types.MediaPlaylist;
    const withParts = parsed.segments.filter((s) => (s.parts ?? []).some((part) => !part.hint)).map((s) => s.mediaSequenceNumber);
    // The playlist ends one frame into segment 8 (8.033 s): segments starting after 5.033 s keep their parts;
    // segment 8 has only its first frame, no complete part yet (its preload hint is listed).
    assert.deepEqual(withParts, [6, 7]);
    assert.deepEqual(p.part(1, 0), { state: 'gone' });
    assert.ok(p.segment(1), 'the segment stays');
  });

  test('PROGRAM-DATE-TIME from the ingest clock, rendition reports, and the query of the request on every URI', () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    feed(p, 0, 45);
    const text = p.render({ query: '?token=abc', reports: [{ uri: '../360p/index.m3u8', lastMsn: 1, lastPart: 1 }] });
    const parsed = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(parsed.segments[0]!.programDateTime?.getTime(), EPOCH);
    assert.equal(parsed.segments[1]!.programDateTime?.getTime(), EPOCH + 1000);
    assert.equal(parsed.renditionReports[0]!.uri, '../360p/index.m3u8?token=abc');
    assert.equal(parsed.renditionReports[0]!.lastMSN, 1);
    for (const uri of text.match(/URI="[^"]+"|^\d+\.m4s.*$/gm)!) assert.match(uri, /\?token=abc/);
  });

  test('the end: the open segment closes, EXT-X-ENDLIST follows, no preload hint, and every request is answered', () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    feed(p, 0, 75);
    p.end();
    const text = p.render();
    assert.match(text, /#EXT-X-ENDLIST\n$/);
    assert.doesNotMatch(text, /PRELOAD-HINT/);
    const parsed = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(parsed.endlist, true);
    assert.ok(Math.abs(parsed.segments.at(-1)!.duration - 0.5) < 1e-6, 'the last segment: 15 frames');
    assert.equal(p.playlistState(9, 0), 'too-far');
    assert.equal(p.playlistState(3, 0), 'ready');
    assert.deepEqual(p.part(3, 0), { state: 'gone' });
  });

  test('audio only: every fragment is a random access point, and segments are cut by time', () => {
    const p = new LlHlsPlaylist(OPTIONS);
    p.init(Buffer.from('init'));
    // 43 ms fragments (2 AAC frames at 48 kHz), all random access points.
    for (let n = 0; n < 80; n++) p.push({ buffer: Buffer.alloc(8), offset: 0, keyframe: true, receivedAt: EPOCH, time: n * 3840 });
    const parsed = HLS.parse(p.render()) as HLS.types.MediaPlaylist;
    const complete = parsed.segments.filter((s) => s.uri);
    assert.equal(complete.length, 3);
    for (const s of complete) assert.ok(s.duration >= 0.95 && s.duration < 1.1, `${s.duration} s`);
    for (const s of parsed.segments) for (const part of s.parts ?? []) if (!part.hint) assert.equal(part.independent, true);
  });

  test('memory stays under maxBytes whatever the DVR window asks', () => {
    const p = new LlHlsPlaylist({ ...OPTIONS, dvrWindowS: 7200, maxBytes: 4000 });
    p.init(Buffer.from('init'));
    feed(p, 0, 30 * 60);
    assert.ok(p.bytes <= 4000, `${p.bytes} bytes held`);
    const parsed = HLS.parse(p.render()) as HLS.types.MediaPlaylist;
    assert.ok(parsed.segments.length >= 2);
    // The segments made are counted, those the cap dropped included (a playlist just made waits for two).
    assert.equal(p.completedSegments, 59, 'sixty GOPs fed, the last one still open');
  });
});
