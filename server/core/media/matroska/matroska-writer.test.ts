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

describe('Matroska writer (the transcoder input for H.264 with Opus)', () => {
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

  test('AAC or another video codec is refused: FLV carries those', () => {
    assert.throws(
      () =>
        new MatroskaWriter().start({
          audio: { codec: 'aac', config: Buffer.from([0x11, 0x90]), codecString: 'mp4a.40.2', sampleRate: 48_000, channels: 2 },
          metadata: {},
        }),
      /CODEC_UNSUPPORTED|Opus audio/,
    );
  });
});
