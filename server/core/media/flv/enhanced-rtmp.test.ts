import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { enhancedRtmpClip } from '../../../../test/helpers/enhanced-rtmp.ts';
import { readObus } from '../av1.ts';
import type { Frame } from '../frame.ts';
import { buildInitSegment, mimeType } from '../mp4/init-segment.ts';
import { FlvFrameReader, type ReaderNotice } from './flv-frame-reader.ts';

describe('Enhanced RTMP v1 video tags (clips encoded by ffmpeg, tags written as OBS 30+ sends them)', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ertmp-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const read = (codec: 'hevc' | 'av1') => {
    const notices: ReaderNotice[] = [];
    const reader = new FlvFrameReader((n) => notices.push(n));
    const frames: Frame[] = enhancedRtmpClip(dir, codec, { size: '320x180', seconds: 2, gop: 30 }).flatMap(
      (t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [],
    );
    return { frames, video: frames.filter((f) => f.track === 'video'), notices };
  };

  test('HEVC: the hvcC gives an hvc1 codec string and the picture size; frames keep their composition offsets (B-frames)', () => {
    const { frames, video, notices } = read('hevc');
    const init = video[0]!.init;
    assert.equal(init.video?.codec, 'hevc');
    assert.match(init.video.codecString, /^hvc1\.1\.6\.L\d+(\.[0-9A-F]{1,2})*$/);
    assert.deepEqual([init.video.width, init.video.height], [320, 180]);
    assert.equal(init.audio?.codecString, 'mp4a.40.2');
    assert.equal(video.length, 60, 'every picture');
    assert.equal(video.filter((f) => f.keyframe).length, 2, 'a keyframe every 30');
    assert.ok(video[0]!.keyframe);
    assert.ok(
      video.some((f) => f.cto > 0),
      'composition offsets (B-frames)',
    );
    assert.ok(frames.some((f) => f.codec === 'aac'));
    assert.equal(notices.filter((n) => n.type === 'unsupported').length, 0);
    // Length-prefixed NAL units, as in MP4 (4-byte lengths), whose sizes add up.
    const p = video[0]!.payload;
    let pos = 0;
    while (pos < p.length) pos += 4 + p.readUInt32BE(pos);
    assert.equal(pos, p.length);
    assert.equal(mimeType(init), 'video/mp4; codecs="' + init.video.codecString + ',mp4a.40.2"');
    assert.ok(buildInitSegment(init).includes(Buffer.from('hvcC')));
  });

  test('AV1: the av1C gives an av01 codec string and the size from its sequence header; samples carry no temporal delimiter', () => {
    const { video } = read('av1');
    const init = video[0]!.init;
    assert.equal(init.video?.codec, 'av1');
    assert.match(init.video.codecString, /^av01\.0\.\d\dM\.08$/);
    assert.deepEqual([init.video.width, init.video.height], [320, 180]);
    assert.equal(video.length, 60);
    assert.ok(video[0]!.keyframe);
    assert.ok(video.every((f) => f.cto === 0));
    for (const f of video)
      assert.ok(
        readObus(f.payload).every((o) => o.type !== 2),
        'no temporal delimiter OBU',
      );
    assert.ok(buildInitSegment(init).includes(Buffer.from('av1C')));
  });

  test('other FourCCs (VP9) are dropped with a notice, and a malformed enhanced tag is a protocol error', () => {
    const notices: ReaderNotice[] = [];
    const reader = new FlvFrameReader((n) => notices.push(n));
    assert.equal(reader.push(9, 0, Buffer.concat([Buffer.from([0x90]), Buffer.from('vp09'), Buffer.alloc(8)]), 0), undefined);
    assert.deepEqual(notices, [{ type: 'unsupported', track: 'video', codec: 'enhanced-RTMP vp09' }]);
    assert.throws(() => reader.push(9, 0, Buffer.from([0x91, 0x68]), 0), /RTMP_PROTOCOL_ERROR|truncated/);
    assert.throws(() => reader.push(9, 0, Buffer.concat([Buffer.from([0x90]), Buffer.from('hvc1'), Buffer.from([1, 2])]), 0), /HEVC decoder configuration/);
  });
});
