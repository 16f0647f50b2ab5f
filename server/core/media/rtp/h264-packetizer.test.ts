import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { H264RtpPayload } from 'werift';
import { RelayError } from '../../errors.ts';
import { FlvFrameReader } from '../flv/flv-frame-reader.ts';
import { readFlvFile } from '../../../../test/helpers/flv-file.ts';
import { parseAvcC } from '../h264.ts';
import type { Frame } from '../frame.ts';
import { H264Depacketizer } from './h264-depacketizer.ts';
import { packetizeH264, splitAvcc } from './h264-packetizer.ts';

function fixtureVideo(): Frame[] {
  const reader = new FlvFrameReader();
  return readFlvFile(new URL('../../../../test/fixtures/obs-like-2s.flv', import.meta.url).pathname)
    .flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [])
    .filter((f) => f.track === 'video');
}

/** AVCC without parameter sets, delimiters or SEI, as the depacketizer keeps it. */
function slicesOnly(avcc: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const nal of splitAvcc(avcc, 4)) {
    if ([6, 7, 8, 9].includes(nal[0]! & 0x1f)) continue;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(nal.length);
    parts.push(length, nal);
  }
  return Buffer.concat(parts);
}

describe('H.264 RTP packetizer (RFC 6184)', () => {
  const frames = fixtureVideo();
  const { sps, pps } = parseAvcC(frames[0]!.init.video!.config);

  test('every picture comes back byte for byte through a depacketizer, with small and normal payload sizes', () => {
    for (const mtu of [200, 1200]) {
      const d = new H264Depacketizer();
      let seq = 65000;
      const out = frames.flatMap((f) => {
        const payloads = packetizeH264(f.payload, 4, f.keyframe ? [...sps, ...pps] : []);
        return payloads.flatMap((payload, i) => d.push({ sequenceNumber: seq++ & 0xffff, timestamp: f.dts, marker: i === payloads.length - 1, payload }));
      });
      assert.equal(out.length, frames.length, `mtu ${mtu}`);
      out.forEach((au, i) => {
        assert.equal(au.keyframe, frames[i]!.keyframe);
        assert.ok(au.payload.equals(slicesOnly(frames[i]!.payload)), `mtu ${mtu}, picture ${i}`);
      });
      assert.equal(d.stats.lost, 0);
    }
  });

  test('payloads respect the size limit; fragments carry start and end bits; parameter sets go first, aggregated', () => {
    const key = frames.find((f) => f.keyframe)!;
    const payloads = packetizeH264(key.payload, 4, [...sps, ...pps], 300);
    assert.ok(payloads.every((p) => p.length <= 300));
    assert.equal(payloads[0]![0]! & 0x1f, 24, 'STAP-A first');
    const fus = payloads.filter((p) => (p[0]! & 0x1f) === 28);
    assert.ok(fus.length > 2);
    assert.equal(fus[0]![1]! & 0xc0, 0x80, 'start bit on the first fragment');
    assert.equal(fus.at(-1)![1]! & 0xc0, 0x40, 'end bit on the last');
    const starts = fus.filter((p) => p[1]! & 0x80).length;
    assert.equal(fus.filter((p) => p[1]! & 0x40).length, starts, 'as many ends as starts');
    assert.equal(starts, splitAvcc(key.payload, 4).filter((n) => n.length > 300).length, 'one fragmented run per large NAL unit');
    // An independent reader (werift's) sees the same: an IDR, fragments reassembled.
    let buffered: Buffer | undefined;
    const whole: number[] = [];
    for (const p of payloads) {
      const unit = H264RtpPayload.deSerialize(p, buffered);
      buffered = unit.fragment;
      if (unit.e === 1) whole.push(unit.nalUnitPayloadType!);
    }
    assert.deepEqual(whole.at(-1), 5, 'werift reassembles the IDR slice');
    assert.equal(buffered, undefined, 'no fragment left over');
  });

  test('a NAL unit that fits travels as it is, without a copy', () => {
    const delta = frames.find((f) => !f.keyframe && f.payload.length < 1000)!;
    const [payload] = packetizeH264(delta.payload, 4);
    assert.equal(payload!.buffer, delta.payload.buffer, 'a view of the frame');
  });

  test('a truncated or overrunning access unit is refused with a stable code', () => {
    assert.throws(
      () => packetizeH264(Buffer.from([0, 0, 0, 9, 0x65, 1, 2]), 4),
      (e) => e instanceof RelayError && e.code === 'CODEC_UNSUPPORTED',
    );
    assert.throws(
      () => packetizeH264(Buffer.from([0, 0]), 4),
      (e) => e instanceof RelayError && e.code === 'CODEC_UNSUPPORTED',
    );
    assert.throws(
      () => packetizeH264(Buffer.alloc(8), 3),
      (e) => e instanceof RelayError && e.code === 'CODEC_UNSUPPORTED',
    );
  });
});
