import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Frame } from '../frame.ts';
import { whipLikeFrames } from '../../../../test/helpers/whip-publisher.ts';
import { MatroskaWriter, opusHead } from './matroska-writer.ts';

function written(frames: Frame[]): Buffer {
  const writer = new MatroskaWriter();
  return Buffer.concat([writer.start(frames[0]!.init), ...frames.map((f) => writer.frame(f))]);
}

const probe = (bytes: Buffer, args: string[]) =>
  execFileSync('ffprobe', ['-v', 'error', ...args, '-of', 'csv=p=0', '-f', 'matroska', '-i', 'pipe:0'], { input: bytes, encoding: 'utf8' })
    .trim()
    .split('\n');

describe('Matroska writer (the transcoder input for Opus, HEVC and AV1)', () => {
  let dir: string;
  let frames: Frame[];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mkv-'));
    frames = whipLikeFrames(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('ffprobe reads H.264 and Opus with every packet at its own millisecond, and ffmpeg decodes every picture', () => {
    const bytes = written(frames);
    assert.deepEqual(probe(bytes, ['-show_entries', 'stream=codec_name,channels']), ['h264', 'opus,2']);
    const packets = probe(bytes, ['-show_entries', 'packet=stream_index,pts']).map((l) => l.split(',').map(Number) as [number, number]);
    const expected = frames.map((f) => [f.track === 'video' ? 0 : 1, Math.round(f.dts / 90)]);
    assert.deepEqual(
      packets.sort((a, b) => a[1] - b[1] || a[0] - b[0]),
      expected.sort((a, b) => a[1]! - b[1]! || a[0]! - b[0]!),
    );
    const decoded = execFileSync(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', '-f', 'matroska', '-i', 'pipe:0'],
      { input: bytes, encoding: 'utf8' },
    ).trim();
    assert.equal(Number(decoded), frames.filter((f) => f.track === 'video').length);
  });

  test('a gap of over 30 s between blocks opens a new cluster instead of overflowing the 16-bit offset', () => {
    const late = frames
      .filter((f) => f.track === 'audio')
      .slice(0, 3)
      .map((f, i) => ({ ...f, dts: f.dts + (i === 2 ? 45_000 * 90 : 0) }));
    const bytes = written([...frames.slice(0, 40), ...late.map((f) => ({ ...f, dts: f.dts + 2 * 90_000 }))]);
    const pts = probe(bytes, ['-show_entries', 'packet=pts']).map(Number);
    assert.equal(Math.max(...pts), Math.round(late[2]!.dts / 90) + 2000);
  });

  test('an Opus track without an identification header gets a standard one', () => {
    const head = opusHead(2);
    assert.equal(head.toString('latin1', 0, 8), 'OpusHead');
    assert.equal(head.length, 19);
    assert.equal(head[9], 2);
    assert.equal(head.readUInt32LE(12), 48_000);
  });

  test('AAC, HEVC and AV1 get their Matroska codec ids, with the AudioSpecificConfig or the configuration record as CodecPrivate', () => {
    const asc = Buffer.from([0x11, 0x90]);
    const record = Buffer.from('01016000000090000000000000', 'hex');
    for (const [codec, id] of [
      ['hevc', 'V_MPEGH/ISO/HEVC'],
      ['av1', 'V_AV1'],
    ] as const) {
      const head = new MatroskaWriter().start({
        video: { codec, config: record, codecString: 'x', width: 320, height: 180 },
        audio: { codec: 'aac', config: asc, codecString: 'mp4a.40.2', sampleRate: 44_100, channels: 2 },
        metadata: {},
      });
      assert.ok(head.includes(Buffer.from(id)), id);
      assert.ok(head.includes(Buffer.concat([Buffer.from([0x63, 0xa2, 0x80 | record.length]), record])), `${id}: the record as CodecPrivate`);
      assert.ok(head.includes(Buffer.from('A_AAC')));
      assert.ok(head.includes(Buffer.concat([Buffer.from([0x63, 0xa2, 0x82]), asc])), 'the AudioSpecificConfig as CodecPrivate');
      assert.ok(!head.includes(Buffer.from('A_OPUS')));
    }
  });
});
