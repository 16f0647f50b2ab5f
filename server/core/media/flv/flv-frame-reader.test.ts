import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RelayError } from '../../errors.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../../../../test/helpers/flv-file.ts';
import { FlvFrameReader, FlvTagType, type ReaderNotice } from './flv-frame-reader.ts';

describe('FlvFrameReader', () => {
  test('turns an OBS-like FLV into frames with configuration, B-frame offsets and keyframes', () => {
    const notices: ReaderNotice[] = [];
    const reader = new FlvFrameReader((n) => notices.push(n));
    const frames = readFlvFile(FIXTURE_OBS_LIKE).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 1000) ?? []);
    const video = frames.filter((f) => f.track === 'video');
    const audio = frames.filter((f) => f.track === 'audio');
    assert.equal(video.length, 60);
    assert.ok(audio.length >= 90, `audio frames: ${audio.length}`);
    assert.equal(video[0]!.keyframe, true);
    assert.equal(video.filter((f) => f.keyframe).length, 2, 'a 1 s GOP over 2 s');
    assert.ok(
      video.some((f) => f.cto > 0),
      'B-frames give positive composition offsets',
    );
    assert.ok(
      video.every((f, i) => i === 0 || f.dts > video[i - 1]!.dts),
      'decode order is increasing',
    );
    const init = video[0]!.init;
    assert.equal(init.video?.codecString, 'avc1.64000d');
    assert.equal(init.video?.width, 320);
    assert.equal(init.video?.height, 180);
    assert.equal(init.audio?.codecString, 'mp4a.40.2');
    assert.equal(init.audio?.sampleRate, 48000);
    assert.equal(init.audio?.channels, 2);
    assert.equal(init.metadata.width, 320);
    assert.ok(notices.some((n) => n.type === 'init'));
    // 90 kHz ticks from FLV milliseconds: 30 fps alternates 33 and 34 ms
    assert.ok([2970, 3060].includes(video[1]!.dts - video[0]!.dts));
    assert.equal(video[30]!.dts - video[0]!.dts, 90_000);
  });

  test('copies payloads so that the caller may reuse its buffer', () => {
    const reader = new FlvFrameReader();
    const tags = readFlvFile(FIXTURE_OBS_LIKE);
    let frame;
    for (const t of tags) {
      const scratch = Buffer.from(t.body);
      frame = reader.push(t.type, t.timestamp, scratch, 0);
      scratch.fill(0xee);
      if (frame) break;
    }
    assert.ok(frame);
    assert.notEqual(frame.payload[0], 0xee);
  });

  test('drops video until a keyframe, and frames before their codec configuration', () => {
    const reader = new FlvFrameReader();
    const tags = readFlvFile(FIXTURE_OBS_LIKE);
    const interFrame = tags.find((t) => t.type === FlvTagType.VIDEO && t.body[1] === 1 && t.body[0]! >> 4 === 2)!;
    assert.equal(reader.push(interFrame.type, interFrame.timestamp, interFrame.body, 0), undefined, 'no configuration yet');
    const config = tags.find((t) => t.type === FlvTagType.VIDEO && t.body[1] === 0)!;
    reader.push(config.type, config.timestamp, config.body, 0);
    assert.equal(reader.push(interFrame.type, interFrame.timestamp, interFrame.body, 0), undefined, 'no keyframe yet');
  });

  test('reads negative composition offsets as signed', () => {
    const reader = new FlvFrameReader();
    const config = readFlvFile(FIXTURE_OBS_LIKE).find((t) => t.type === FlvTagType.VIDEO && t.body[1] === 0)!;
    reader.push(config.type, 0, config.body, 0);
    const body = Buffer.from([0x17, 0x01, 0xff, 0xff, 0xd6, 0, 0, 0, 1, 0x65]); // cto = -42 ms
    const frame = reader.push(FlvTagType.VIDEO, 100, body, 0);
    assert.equal(frame?.cto, -42 * 90);
    assert.equal(frame?.dts, 100 * 90);
  });

  test('reports an unsupported codec once and produces no frames for it', () => {
    const notices: ReaderNotice[] = [];
    const reader = new FlvFrameReader((n) => notices.push(n));
    const vp9 = Buffer.concat([Buffer.from([0x90]), Buffer.from('vp09'), Buffer.alloc(8)]);
    assert.equal(reader.push(FlvTagType.VIDEO, 0, vp9, 0), undefined);
    assert.equal(reader.push(FlvTagType.VIDEO, 33, vp9, 0), undefined);
    const mp3 = Buffer.from([0x2f, 1, 2, 3]);
    assert.equal(reader.push(FlvTagType.AUDIO, 0, mp3, 0), undefined);
    assert.deepEqual(notices, [
      { type: 'unsupported', track: 'video', codec: 'enhanced-RTMP vp09' },
      { type: 'unsupported', track: 'audio', codec: 'FLV sound format 2' },
    ]);
  });

  test('throws a coded error on malformed tags', () => {
    const reader = new FlvFrameReader();
    assert.throws(
      () => reader.push(FlvTagType.VIDEO, 0, Buffer.alloc(0), 0),
      (e: RelayError) => e.code === 'RTMP_PROTOCOL_ERROR',
    );
    assert.throws(
      () => reader.push(FlvTagType.VIDEO, 0, Buffer.from([0x17, 0, 0, 0, 0, 1, 2]), 0),
      (e: RelayError) => e.code === 'CODEC_UNSUPPORTED',
    );
    assert.throws(
      () => reader.push(FlvTagType.AUDIO, 0, Buffer.from([0xaf, 0, 0xff]), 0),
      (e: RelayError) => e.code === 'CODEC_UNSUPPORTED',
    );
  });

  test('keeps only known metadata keys, and short strings', () => {
    const reader = new FlvFrameReader();
    reader.metadata({ width: 1280, framerate: 30, encoder: 'obs-output module'.repeat(50), evil: { nested: true }, stereo: true });
    assert.equal(reader.current.metadata.width, 1280);
    assert.equal(reader.current.metadata.stereo, true);
    assert.equal((reader.current.metadata.encoder as string).length, 200);
    assert.equal('evil' in reader.current.metadata, false);
  });
});
