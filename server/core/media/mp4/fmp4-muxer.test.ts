import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Frame } from '../frame.ts';
import { FlvFrameReader } from '../flv/flv-frame-reader.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../../../../test/helpers/flv-file.ts';
import { Fmp4Muxer, fragmentBytes, type Fragment } from './fmp4-muxer.ts';
import { buildInitSegment, mimeType } from './init-segment.ts';
import { opusConfig } from '../opus.ts';
import { OggOpusReader } from '../ogg/ogg-opus-reader.ts';

const dir = mkdtempSync(join(tmpdir(), 'fmp4-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fixtureFrames(): Frame[] {
  const reader = new FlvFrameReader();
  return readFlvFile(FIXTURE_OBS_LIKE).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 1_700_000_000_000 + t.timestamp) ?? []);
}

function mux(frames: Frame[], headroom = 0): { file: string; fragments: Fragment[] } {
  const firstVideo = frames.findIndex((f) => f.track === 'video');
  const muxer = new Fmp4Muxer(frames[firstVideo]!.init, { headroom });
  const fragments = frames.slice(firstVideo).flatMap((f) => muxer.push(f) ?? []);
  const file = join(dir, `out-${Math.random().toString(36).slice(2)}.mp4`);
  writeFileSync(file, Buffer.concat([buildInitSegment(frames[firstVideo]!.init), ...fragments.map(fragmentBytes)]));
  return { file, fragments };
}

function ffprobe(file: string, args: string[]): string {
  return execFileSync('ffprobe', ['-v', 'error', ...args, file], { encoding: 'utf8' });
}

describe('Fmp4Muxer', () => {
  const frames = fixtureFrames();
  const video = frames.filter((f) => f.track === 'video');

  test('writes one fragment per video frame, and ffprobe reads every frame of both tracks', () => {
    const { file, fragments } = mux(frames);
    assert.equal(fragments.length, video.length);
    const counts = ffprobe(file, ['-count_packets', '-show_entries', 'stream=codec_name,nb_read_packets,width,height', '-of', 'csv=p=0']).trim().split('\n');
    assert.equal(counts[0], 'h264,320,180,60');
    const audioPackets = Number(counts[1]!.split(',').at(-1));
    assert.ok(audioPackets >= 85, `audio packets ${audioPackets}`);
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-']);
  });

  test('keeps B-frame presentation order: pts and dts match the source', () => {
    const { file } = mux(frames);
    const rows = ffprobe(file, ['-select_streams', 'v', '-show_entries', 'packet=pts,dts,flags', '-of', 'csv=p=0']).trim().split('\n');
    assert.equal(rows.length, video.length);
    rows.forEach((row, i) => {
      const [pts, dts, flags] = row.split(',');
      const f = video[i]!;
      assert.equal(Number(dts), f.dts, `dts of frame ${i}`);
      assert.equal(Number(pts), f.dts + f.cto, `pts of frame ${i}`);
      assert.equal(flags!.startsWith('K'), f.keyframe, `keyframe flag of frame ${i}`);
    });
    assert.ok(
      rows.some((r) => {
        const [pts, dts] = r.split(',').map(Number);
        return pts! > dts!;
      }),
      'B-frames present',
    );
  });

  test('audio timestamps follow a 1024-sample clock', () => {
    const { file } = mux(frames);
    const pts = ffprobe(file, ['-select_streams', 'a', '-show_entries', 'packet=pts', '-of', 'csv=p=0']).trim().split('\n').map(Number);
    for (let i = 1; i < pts.length; i++) assert.equal(pts[i]! - pts[i - 1]!, 1024);
  });

  test('a late joiner starting at the second keyframe gets a playable stream', () => {
    const second = video.filter((f) => f.keyframe)[1]!;
    const { file } = mux(frames.slice(frames.indexOf(second)));
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-']);
    const first = ffprobe(file, ['-select_streams', 'v', '-show_entries', 'packet=dts,flags', '-of', 'csv=p=0', '-read_intervals', '%+#1']).trim();
    assert.equal(first, `${second.dts},K_`);
  });

  test('leaves the requested headroom in front of each fragment and writes prft with the ingest time', () => {
    const { fragments } = mux(frames, 10);
    const f = fragments[0]!;
    assert.equal(f.offset, 10);
    const bytes = fragmentBytes(f);
    assert.equal(bytes.subarray(4, 8).toString('latin1'), 'prft');
    const ntpSeconds = bytes.readUInt32BE(16);
    const unixMs = (ntpSeconds - 2_208_988_800) * 1000 + (bytes.readUInt32BE(20) / 2 ** 32) * 1000;
    assert.ok(Math.abs(unixMs - f.receivedAt) < 1, `${unixMs} vs ${f.receivedAt}`);
    assert.equal(bytes.subarray(36, 40).toString('latin1'), 'moof');
    assert.equal(f.keyframe, true);
    assert.equal(fragments[1]!.keyframe, false);
  });

  test('flushes pending audio on its own when video pauses', () => {
    const init = video[0]!.init;
    const muxer = new Fmp4Muxer(init);
    muxer.push(video[0]!);
    const audio = frames.filter((f) => f.track === 'audio' && f.dts > video[0]!.dts).slice(0, 3);
    for (const a of audio) assert.equal(muxer.push(a), undefined);
    assert.equal(muxer.pendingAudioFrames, 3);
    const flushed = muxer.flushAudio();
    assert.ok(flushed);
    assert.equal(muxer.pendingAudioFrames, 0);
    assert.equal(muxer.flushAudio(), undefined);
  });

  test('names the codecs from the stream configuration', () => {
    assert.equal(mimeType(video[0]!.init), 'video/mp4; codecs="avc1.64000d,mp4a.40.2"');
  });

  test("carries Opus audio (a WebRTC source) in an Opus/dOps track that ffmpeg decodes, on a clock of the packets' own durations", () => {
    const ogg = execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=sample_rate=48000:duration=2',
      '-c:a',
      'libopus',
      '-b:a',
      '64k',
      '-ac',
      '2',
      '-frame_duration',
      '20',
      '-page_duration',
      '20000',
      '-f',
      'ogg',
      'pipe:1',
    ]);
    const reader = new OggOpusReader();
    const packets = reader.push(ogg);
    const start = video[0]!.dts;
    const init = { ...video[0]!.init, audio: opusConfig(2) };
    const opus: Frame[] = packets.map((p) => ({
      track: 'audio',
      codec: 'opus',
      dts: start + Math.round((p.start - reader.head!.preSkip) * 1.875),
      cto: 0,
      keyframe: true,
      payload: p.payload,
      receivedAt: 0,
      init,
    }));
    const mixed = [...video.map((v) => ({ ...v, init })), ...opus].sort((a, b) => a.dts - b.dts || (a.track === 'video' ? -1 : 1));
    const { file } = mux(mixed);
    assert.equal(mimeType(init), 'video/mp4; codecs="avc1.64000d,opus"');
    const streams = ffprobe(file, ['-count_packets', '-show_entries', 'stream=codec_name,nb_read_packets,sample_rate', '-of', 'csv=p=0']).trim().split('\n');
    const audioRow = streams.find((r) => r.startsWith('opus'))!;
    assert.ok(audioRow, streams.join(' | '));
    const inMux = opus.filter((f) => f.dts >= video[0]!.dts && f.dts <= video.at(-1)!.dts).length;
    assert.ok(Number(audioRow.split(',').at(-1)) >= inMux - 1, `${audioRow}: ${inMux} Opus packets fall within the video`);
    const pts = ffprobe(file, ['-select_streams', 'a', '-show_entries', 'packet=pts', '-of', 'csv=p=0']).trim().split('\n').map(Number);
    for (let i = 1; i < pts.length; i++) assert.equal(pts[i]! - pts[i - 1]!, 960, `Opus packet ${i} 960 samples after the previous`);
    // Every packet decodes.
    const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:a', '-f', 'null', '-'], { encoding: 'utf8' });
    assert.equal(decode.status, 0);
    assert.equal(decode.stderr.trim(), '', 'ffmpeg decodes every Opus packet without an error');
  });
});
