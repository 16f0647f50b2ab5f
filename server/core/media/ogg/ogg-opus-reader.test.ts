import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { RelayError } from '../../errors.ts';
import { opusPacketSamples } from '../opus.ts';
import { OggOpusReader, type OpusPacket } from './ogg-opus-reader.ts';

/** 1 s of Opus in Ogg, one packet per page as the transcoder asks for, its clock starting at 100 s. */
function oggFixture(pageDurationUs: number): Buffer {
  return execFileSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'sine=sample_rate=48000:duration=1',
    '-output_ts_offset',
    '100',
    '-c:a',
    'libopus',
    '-b:a',
    '64k',
    '-ac',
    '2',
    '-frame_duration',
    '20',
    '-page_duration',
    String(pageDurationUs),
    '-f',
    'ogg',
    'pipe:1',
  ]);
}

describe('OggOpusReader', () => {
  test('dates every packet from the page granules: contiguous 20 ms packets on the source clock', () => {
    const reader = new OggOpusReader();
    const packets = reader.push(oggFixture(20_000));
    assert.equal(reader.head?.channels, 2);
    assert.ok(reader.head.preSkip > 0 && reader.head.preSkip < 4000, `pre-skip ${reader.head.preSkip}`);
    assert.ok(packets.length >= 50 && packets.length <= 52, `${packets.length} packets`);
    for (let i = 1; i < packets.length; i++) assert.equal(packets[i]!.start, packets[i - 1]!.start + packets[i - 1]!.samples);
    // Less the pre-skip, the first packet starts where the input did, at 100 s.
    assert.ok(Math.abs(packets[0]!.start - reader.head.preSkip - 100 * 48_000) <= 960, `first packet at ${packets[0]!.start}`);
  });

  test('several packets per page get their own times, walking back from the granule', () => {
    const one = new OggOpusReader().push(oggFixture(20_000));
    const many = new OggOpusReader().push(oggFixture(1_000_000));
    assert.deepEqual(
      many.map((p) => p.start),
      one.map((p) => p.start),
    );
  });

  test('gives the same packets whatever the chunking of the pipe', () => {
    const bytes = oggFixture(20_000);
    const whole = new OggOpusReader().push(bytes);
    for (const size of [1, 7, 27, 300, 4096]) {
      const reader = new OggOpusReader();
      const got: OpusPacket[] = [];
      for (let i = 0; i < bytes.length; i += size) got.push(...reader.push(bytes.subarray(i, i + size)));
      assert.deepEqual(
        got.map((p) => [p.start, p.payload.toString('hex')]),
        whole.map((p) => [p.start, p.payload.toString('hex')]),
        `chunks of ${size}`,
      );
    }
  });

  test('refuses what is not Ogg Opus with a stable code', () => {
    assert.throws(
      () => new OggOpusReader().push(Buffer.alloc(64, 0x41)),
      (err) => err instanceof RelayError && err.code === 'CODEC_UNSUPPORTED',
    );
    const vorbisLike = Buffer.from(oggFixture(20_000));
    vorbisLike.write('NotOpus!', 28, 'latin1'); // the first packet's magic
    assert.throws(() => new OggOpusReader().push(vorbisLike), /not Opus/);
  });

  test('reads packet durations from the TOC byte (RFC 6716)', () => {
    assert.equal(opusPacketSamples(Buffer.from([0xfc])), 960); // CELT FB 20 ms, one frame
    assert.equal(opusPacketSamples(Buffer.from([0xfd, 0, 0])), 1920); // two frames
    assert.equal(opusPacketSamples(Buffer.from([0x1b, 0x02])), 5760); // SILK NB 60 ms, code 3, 2 frames
    assert.equal(opusPacketSamples(Buffer.from([0x0b, 0x03])), 2880); // SILK NB 20 ms, code 3, 3 frames
    assert.equal(opusPacketSamples(Buffer.from([0xe0])), 120); // CELT 2.5 ms
    assert.throws(() => opusPacketSamples(Buffer.alloc(0)), /empty/);
    assert.throws(() => opusPacketSamples(Buffer.from([0x0b, 0x00])), /0 frames/);
    assert.throws(() => opusPacketSamples(Buffer.from([0x1b, 0x03])), /3 frames/); // 180 ms: over the 120 ms limit
  });
});
