import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import HLS from 'hls-parser';
import { mediaPlaylist, multivariantPlaylist, type PlaylistSegment } from './playlist.ts';

// A playlist hls-parser finds invalid fails the test (by default it only prints why).
HLS.setOptions({ strictMode: true });

const T0 = Date.parse('2026-12-06T10:00:00Z');
const segments: PlaylistSegment[] = [
  { index: 0, initId: 1, discontinuity: false, duration: 4, programDateTime: T0 },
  { index: 1, initId: 1, discontinuity: false, duration: 3.5, programDateTime: T0 + 4000 },
  // Frames lost, then the next keyframe: a discontinuity, and a new init after a codec change.
  { index: 2, initId: 2, discontinuity: true, duration: 4.2, programDateTime: T0 + 9000 },
];

describe("a recording's playlists", () => {
  test('while live: an EVENT playlist of the stored segments, no end, each segment dated', () => {
    const text = mediaPlaylist(segments, false);
    const p = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(p.playlistType, 'EVENT');
    assert.equal(p.endlist, false);
    assert.equal(p.targetDuration, 4);
    assert.deepEqual(
      p.segments.map((s) => [s.uri, s.duration, s.map?.uri, s.discontinuity === true, s.programDateTime?.getTime()]),
      [
        ['000000.m4s', 4, 'init-1.mp4', false, T0],
        ['000001.m4s', 3.5, 'init-1.mp4', false, T0 + 4000],
        ['000002.m4s', 4.2, 'init-2.mp4', true, T0 + 9000],
      ],
    );
  });

  test('at the end: VOD with EXT-X-ENDLIST, the same segments', () => {
    const p = HLS.parse(mediaPlaylist(segments, true)) as HLS.types.MediaPlaylist;
    assert.equal(p.playlistType, 'VOD');
    assert.equal(p.endlist, true);
    assert.equal(p.segments.length, 3);
  });

  test('a segment longer than the others sets the target duration (rounded, as EXTINF may be)', () => {
    const p = HLS.parse(mediaPlaylist([...segments, { index: 3, initId: 2, discontinuity: false, duration: 6.4, programDateTime: T0 + 13200 }], true));
    assert.equal((p as HLS.types.MediaPlaylist).targetDuration, 6);
  });

  test('a rewind window lists the last segments only: a sliding playlist counting what it dropped', () => {
    const long: PlaylistSegment[] = Array.from({ length: 10 }, (_, i) => ({
      index: i,
      initId: i < 5 ? 1 : 2,
      discontinuity: i === 3 || i === 5,
      duration: 4,
      programDateTime: T0 + i * 4000,
    }));
    const text = mediaPlaylist(long, false, { windowS: 12, query: '?token=t' });
    const p = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(p.playlistType, undefined, 'no longer EVENT: segments leave it');
    assert.equal(p.mediaSequenceBase, 7);
    assert.equal(p.discontinuitySequenceBase, 2, 'the two discontinuities dropped (at 3 and 5)');
    assert.deepEqual(
      p.segments.map((s) => [s.uri, s.map?.uri]),
      [
        ['000007.m4s?token=t', 'init-2.mp4?token=t'],
        ['000008.m4s?token=t', 'init-2.mp4?token=t'],
        ['000009.m4s?token=t', 'init-2.mp4?token=t'],
      ],
    );
    assert.equal((HLS.parse(mediaPlaylist(long, false, { windowS: 0 })) as HLS.types.MediaPlaylist).segments.length, 10, 'no window: all of it');
    assert.equal((HLS.parse(mediaPlaylist(long, false, { windowS: 1 })) as HLS.types.MediaPlaylist).segments.length, 1, 'at least the last segment');
  });

  test('the multivariant playlist lists each rendition with its bandwidth, codecs and size', () => {
    const text = multivariantPlaylist([
      { rendition: 'source', bandwidth: 3_100_000, averageBandwidth: 2_650_000, codecs: 'avc1.64001f,mp4a.40.2', width: 1280, height: 720 },
      { rendition: 'radio', bandwidth: 130_000, averageBandwidth: 128_000, codecs: 'mp4a.40.2' },
    ]);
    const p = HLS.parse(text) as HLS.types.MasterPlaylist;
    assert.deepEqual(
      p.variants.map((v) => [v.uri, v.bandwidth, v.averageBandwidth, v.codecs, v.resolution?.height]),
      [
        ['source/index.m3u8', 3_100_000, 2_650_000, 'avc1.64001f,mp4a.40.2', 720],
        ['radio/index.m3u8', 130_000, 128_000, 'mp4a.40.2', undefined],
      ],
    );
  });
});
