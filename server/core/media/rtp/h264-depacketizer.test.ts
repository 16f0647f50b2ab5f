import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { H264Packetizer, RtpPacket } from 'werift';
import { RelayError } from '../../errors.ts';
import { FlvFrameReader } from '../flv/flv-frame-reader.ts';
import { readFlvFile } from '../../../../test/helpers/flv-file.ts';
import { parseAvcC } from '../h264.ts';
import type { Frame } from '../frame.ts';
import { H264Depacketizer, type RtpPacketLike } from './h264-depacketizer.ts';

/** The fixture's video, re-encoded without B-frames is not needed: RTP carries pictures in decode order either way. */
function fixtureVideo(): Frame[] {
  const reader = new FlvFrameReader();
  return readFlvFile(new URL('../../../../test/fixtures/obs-like-2s.flv', import.meta.url).pathname)
    .flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [])
    .filter((f) => f.track === 'video');
}

/** Packets as a WebRTC sender makes them: werift's packetizer (an independent implementation), small MTU for many FU-As. */
function packetize(frames: Frame[], mtu = 300): RtpPacketLike[] {
  const { sps, pps } = parseAvcC(frames[0]!.init.video!.config);
  const packetizer = new H264Packetizer({
    naluLengthSize: 4,
    inputFormat: 'length-prefixed',
    parameterSets: [sps[0]!, pps[0]!],
    maxPayloadSize: mtu,
    sequenceNumber: 65500,
  });
  return frames
    .flatMap((f) => packetizer.packetize(f.payload, f.dts, { isKeyframe: f.keyframe }))
    .map((p: RtpPacket) => ({ sequenceNumber: p.header.sequenceNumber, timestamp: p.header.timestamp, marker: p.header.marker, payload: p.payload }));
}

/** AVCC without parameter sets, delimiters or SEI, as the depacketizer keeps it. */
function slicesOnly(avcc: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let p = 0; p < avcc.length;) {
    const size = avcc.readUInt32BE(p);
    const type = avcc[p + 4]! & 0x1f;
    if (![6, 7, 8, 9].includes(type)) parts.push(avcc.subarray(p, p + 4 + size));
    p += 4 + size;
  }
  return Buffer.concat(parts);
}

describe('H264Depacketizer', () => {
  const frames = fixtureVideo();

  test('rebuilds every picture byte for byte from single NAL, STAP-A and FU-A packets, across a sequence wrap', () => {
    const packets = packetize(frames);
    assert.ok(packets.length > frames.length * 2, 'small MTU: pictures span several packets');
    const d = new H264Depacketizer();
    const out = packets.flatMap((p) => d.push(p));
    assert.equal(out.length, frames.length);
    out.forEach((au, i) => {
      assert.equal(au.timestamp, frames[i]!.dts);
      assert.equal(au.keyframe, frames[i]!.keyframe);
      assert.ok(au.payload.equals(slicesOnly(frames[i]!.payload)), `picture ${i}`);
    });
    // The configuration comes from the in-band SPS/PPS, and matches the source's.
    const source = parseAvcC(frames[0]!.init.video!.config);
    assert.deepEqual([out[0]!.config.width, out[0]!.config.height, out[0]!.config.codecString], [source.width, source.height, source.codecString]);
    assert.equal(out.at(-1)!.config, out[0]!.config, 'the same object while the parameter sets do not change');
  });

  test('a lost packet drops the picture and everything up to the next IDR, and asks for one', () => {
    const packets = packetize(frames);
    // Every position: the first, a middle or the last packet of a picture, a whole one-packet picture.
    for (let lossAt = 30; lossAt < packets.length - 1; lossAt += 7) {
      const lostPicture = packets[lossAt]!.timestamp;
      const nextKey = frames.find((f) => f.keyframe && f.dts > lostPicture)?.dts ?? Infinity;
      const d = new H264Depacketizer();
      const out = packets.filter((_, i) => i !== lossAt).flatMap((p) => d.push(p));
      assert.ok(
        out.some((au) => au.timestamp < lostPicture),
        `loss at ${lossAt}: pictures before it come out`,
      );
      assert.ok(
        out.every((au) => au.timestamp < lostPicture || au.timestamp >= nextKey),
        `loss at ${lossAt}: nothing from it up to the next IDR`,
      );
      if (nextKey !== Infinity)
        assert.ok(
          out.some((au) => au.timestamp === nextKey && au.keyframe),
          `loss at ${lossAt}: resumes at the IDR`,
        );
      else assert.equal(d.needKeyframe, true, `loss at ${lossAt}: waiting for an IDR`);
      assert.equal(d.stats.lost, 1);
    }
  });

  test('starts only at an IDR with its parameter sets', () => {
    const packets = packetize(frames);
    const firstDelta = packets.findIndex((p) => p.timestamp === frames.find((f) => !f.keyframe)!.dts);
    const d = new H264Depacketizer();
    const out = packets.slice(firstDelta).flatMap((p) => d.push(p));
    assert.ok(out.length > 0 && out[0]!.keyframe);
  });

  test('refuses packet types outside mode 1 and malformed aggregates with a stable code', () => {
    const bad = (payload: number[]) => () => new H264Depacketizer().push({ sequenceNumber: 1, timestamp: 0, marker: true, payload: Buffer.from(payload) });
    assert.throws(bad([26, 0, 0]), (e) => e instanceof RelayError && e.code === 'CODEC_UNSUPPORTED');
    assert.throws(bad([24, 0, 9, 0x67]), /malformed STAP-A/);
  });
});
