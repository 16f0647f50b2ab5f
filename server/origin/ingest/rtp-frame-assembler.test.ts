import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { H264Packetizer } from 'werift';
import { FlvFrameReader } from '../../core/media/flv/flv-frame-reader.ts';
import { readFlvFile } from '../../../test/helpers/flv-file.ts';
import { parseAvcC } from '../../core/media/h264.ts';
import { RtpFrameAssembler } from './rtp-frame-assembler.ts';

const video = (() => {
  const reader = new FlvFrameReader();
  return readFlvFile(new URL('../../../test/fixtures/obs-like-2s.flv', import.meta.url).pathname)
    .flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [])
    .filter((f) => f.track === 'video');
})();

describe('RtpFrameAssembler', () => {
  test('puts video and Opus on one 90 kHz timeline across an RTP timestamp wrap, audio from the first keyframe on', () => {
    const { sps, pps } = parseAvcC(video[0]!.init.video!.config);
    const packetizer = new H264Packetizer({ naluLengthSize: 4, inputFormat: 'length-prefixed', parameterSets: [sps[0]!, pps[0]!] });
    const a = new RtpFrameAssembler({ video: true, audio: true });
    const base = 0xffffffff - 3000 * 5; // wraps after five pictures
    // Audio arrives first: dropped until video has a keyframe.
    assert.equal(a.audio({ sequenceNumber: 1, timestamp: 1000, marker: false, payload: Buffer.from([0xfc, 0]) }, 1000), undefined);
    const frames = video
      .slice(0, 20)
      .flatMap((f, i) =>
        packetizer
          .packetize(f.payload, (base + i * 3000) >>> 0, { isKeyframe: f.keyframe })
          .flatMap((p) =>
            a.video({ sequenceNumber: p.header.sequenceNumber, timestamp: p.header.timestamp, marker: p.header.marker, payload: p.payload }, 1000 + i * 33.3),
          ),
      );
    assert.equal(frames.length, 20);
    for (let i = 1; i < frames.length; i++)
      assert.equal(frames[i]!.dts - frames[i - 1]!.dts, 3000, `picture ${i} one frame after the previous, across the wrap`);
    assert.equal(frames[0]!.init.audio?.codec, 'opus', 'the init announces the negotiated Opus track');
    const opus = a.audio({ sequenceNumber: 2, timestamp: 1000 + 960 * 25, marker: false, payload: Buffer.from([0xfc, 0]) }, 1000 + 500);
    assert.ok(opus, 'audio after the keyframe passes');
    // The audio clock is anchored at its first packet's arrival (0 ms), and 25 packets later is 500 ms on.
    assert.equal(opus.dts, 500 * 90);
    assert.equal(opus.init, frames.at(-1)!.init);
  });
});
