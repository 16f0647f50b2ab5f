import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { FlvFrameReader } from './flv-frame-reader.ts';
import type { Frame } from '../frame.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../../../../test/helpers/flv-file.ts';
import { FlvTagStream } from './flv-tag-stream.ts';
import { FlvWriter } from './flv-writer.ts';

function fixtureFrames(): Frame[] {
  const reader = new FlvFrameReader();
  return readFlvFile(FIXTURE_OBS_LIKE).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? []);
}

function written(frames: Frame[]): Buffer {
  const writer = new FlvWriter();
  const firstVideo = frames.find((f) => f.track === 'video')!;
  return Buffer.concat([writer.start(firstVideo.init), ...frames.map((f) => writer.frame(f))]);
}

test('frames written as FLV read back as the same frames, whatever the chunking', () => {
  const frames = fixtureFrames();
  const bytes = written(frames);
  for (const chunkSize of [1, 7, 4096, bytes.length]) {
    const stream = new FlvTagStream();
    const reader = new FlvFrameReader();
    const back: Frame[] = [];
    for (let i = 0; i < bytes.length; i += chunkSize) {
      for (const t of stream.push(bytes.subarray(i, i + chunkSize))) {
        const f = reader.push(t.type, t.timestampMs, t.body, 0);
        if (f) back.push(f);
      }
    }
    assert.equal(back.length, frames.length, `chunks of ${chunkSize}`);
    back.forEach((f, i) => {
      const o = frames[i]!;
      assert.equal(f.track, o.track);
      assert.equal(f.dts, o.dts);
      assert.equal(f.cto, o.cto);
      assert.equal(f.keyframe, o.keyframe);
      assert.deepEqual(f.payload, o.payload);
    });
  }
});

test('ffmpeg reads the written FLV, B-frames included, and decodes every frame', () => {
  const frames = fixtureFrames();
  const out = execFileSync(
    'ffprobe',
    ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames,has_b_frames', '-of', 'csv=p=0', '-i', 'pipe:0'],
    { input: written(frames), encoding: 'utf8' },
  );
  const [video, audio] = out.trim().split('\n');
  assert.equal(video, 'h264,2,60');
  assert.match(audio!, /^aac,\d+$/);
});

test('a stream that is not FLV, or a tag of more than 8 MiB, is refused', () => {
  assert.throws(() => new FlvTagStream().push(Buffer.from('GIF89a-not-flv')), /not an FLV stream/);
  const s = new FlvTagStream();
  s.push(Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]));
  assert.throws(() => s.push(Buffer.from([9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0])), /FLV tag of/);
});
