import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { FlvFrameReader } from '../../core/media/flv/flv-frame-reader.ts';
import { TICKS_PER_SECOND, type Frame } from '../../core/media/frame.ts';
import { readFlvFile } from '../../../test/helpers/flv-file.ts';
import { whipLikeFrames } from '../../../test/helpers/whip-publisher.ts';
import { enhancedRtmpClip } from '../../../test/helpers/enhanced-rtmp.ts';
import { FfmpegTranscoder } from './ffmpeg-transcoder.ts';
import { planLadder, type Rung } from './ladder.ts';

const LADDER: Rung[] = [
  { name: '1080p', height: 1080, videoKbps: 5000, audioKbps: 128, priority: 1, preset: 'veryfast' },
  { name: '480p', height: 480, videoKbps: 1000, audioKbps: 96, priority: 1, preset: 'veryfast' },
  { name: '360p', height: 360, videoKbps: 600, audioKbps: 64, priority: 1, preset: 'veryfast' },
];

describe('FfmpegTranscoder with real ffmpeg', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'transcode-'));
  let source: Frame[] = [];

  before(() => {
    // An OBS-like 720p source (High, B-frames, AAC 48 kHz) with an 8 s GOP, as OBS's default would be.
    const file = join(dir, 'source.flv');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=sample_rate=48000',
      '-t',
      '6',
      '-c:v',
      'libx264',
      '-profile:v',
      'high',
      '-preset',
      'ultrafast',
      '-bf',
      '2',
      '-g',
      '240',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      '2500k',
      '-c:a',
      'aac',
      '-ar',
      '48000',
      '-f',
      'flv',
      file,
    ]);
    const reader = new FlvFrameReader();
    // Each source frame's ingest time is its own presentation time (ms): a transcoded frame must carry its source frame's.
    source = readFlvFile(file).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? []);
    for (const f of source) f.receivedAt = 1_000_000 + (f.dts + f.cto) / 90;
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('never plans a rung above the source; an unsupported source is passthrough only', () => {
    const init = source.find((f) => f.track === 'video')!.init;
    const plan = planLadder(LADDER, init);
    assert.deepEqual(
      plan.rungs.map((r) => r.name),
      ['480p', '360p'],
    );
    assert.deepEqual(
      plan.skipped.map((s) => s.name),
      ['1080p'],
    );
    assert.match(planLadder(LADDER, { metadata: {} }).passthroughOnly!, /neither audio nor video/);
  });

  test('every rung has its size, a bitrate within tolerance, and keyframes aligned with the other rungs', async () => {
    const init = source.find((f) => f.track === 'video')!.init;
    const plan = planLadder(LADDER, init);
    const transcoder = new FfmpegTranscoder(plan.rungs, init, { gopSeconds: 2, opusKbps: 64, maxBacklogMs: 1500 }, pino({ level: 'silent' }));
    const out = new Map<string, Frame[]>();
    transcoder.on('frame', (rendition, frame) => {
      if (!out.has(rendition)) out.set(rendition, []);
      out.get(rendition)!.push(frame);
    });
    transcoder.start();
    for (const f of source.slice(source.findIndex((x) => x.track === 'video'))) transcoder.push(f);
    await transcoder.finish();
    const expected = { '480p': { width: 854, height: 480 }, '360p': { width: 640, height: 360 } } as const;
    const keyTimes = new Map<string, number[]>();
    for (const rung of plan.rungs) {
      const frames = out.get(rung.name) ?? [];
      const video = frames.filter((f) => f.track === 'video');
      assert.ok(video.length >= 170, `${rung.name}: ${video.length} video frames of 180`);
      assert.deepEqual({ width: video[0]!.init.video!.width, height: video[0]!.init.video!.height }, expected[rung.name as keyof typeof expected]);
      assert.ok(
        video.every((f) => f.cto === 0),
        `${rung.name} has no B-frames`,
      );
      assert.ok(
        frames.some((f) => f.track === 'audio' && f.codec === 'aac'),
        `${rung.name} has AAC audio`,
      );
      const seconds = (video.at(-1)!.dts - video[0]!.dts) / TICKS_PER_SECOND;
      const kbps = (video.reduce((n, f) => n + f.payload.length, 0) * 8) / 1000 / seconds;
      assert.ok(kbps > rung.videoKbps * 0.5 && kbps < rung.videoKbps * 1.5, `${rung.name}: ${kbps.toFixed(0)} kbit/s for ${rung.videoKbps}`);
      keyTimes.set(
        rung.name,
        video.filter((f) => f.keyframe).map((f) => f.dts),
      );
      // The source's presentation timeline is kept (without B-frames, decode time = presentation time).
      const firstSource = source.find((f) => f.track === 'video')!;
      const sourceStart = firstSource.dts + firstSource.cto;
      assert.ok(Math.abs(video[0]!.dts - sourceStart) <= 3000, `${rung.name} starts at ${video[0]!.dts}, the source presents at ${sourceStart}`);
      const matched = video.filter((f) => Math.abs(f.receivedAt - (1_000_000 + f.dts / 90)) <= 2).length;
      assert.ok(matched >= video.length - 1, `${rung.name}: ${matched} of ${video.length} frames carry their own source frame's ingest time`);
    }
    // Opus beside AAC on the highest rung only (the stream's WebRTC rendition), on the source's timeline.
    assert.equal(transcoder.webrtcRendition, '480p');
    assert.ok(!(out.get('360p') ?? []).some((f) => f.codec === 'opus'), 'only the WebRTC rung carries Opus');
    const opus = (out.get('480p') ?? []).filter((f) => f.codec === 'opus');
    assert.ok(opus.length >= 250, `${opus.length} Opus packets of 20 ms over 6 s`);
    assert.equal(opus[0]!.init.opus?.codec, 'opus');
    assert.equal(opus[0]!.init.audio?.codec, 'aac');
    for (let i = 1; i < opus.length; i++) assert.equal(opus[i]!.dts - opus[i - 1]!.dts, 1800, `Opus packet ${i} follows the previous by 20 ms`);
    const firstAac = source.find((f) => f.track === 'audio')!;
    // On the source's audio clock, less libopus's pre-skip (312 samples, 585 ticks: its priming samples play first).
    const offset = (((opus[0]!.dts + 585 - firstAac.dts) % 1800) + 1800) % 1800;
    assert.ok(offset <= 2 || offset >= 1798, `Opus at ${opus[0]!.dts} is on the source audio's 20 ms grid from ${firstAac.dts} (off by ${offset})`);
    assert.ok(opus[0]!.dts - firstAac.dts < 90 * 500, 'Opus starts within half a second of the source audio');
    const opusMatched = opus.filter((f) => Math.abs(f.receivedAt - (1_000_000 + f.dts / 90)) <= 25).length;
    assert.ok(opusMatched >= opus.length - 2, `${opusMatched} of ${opus.length} Opus frames carry a nearby source frame's ingest time`);
    const [a, b] = [...keyTimes.values()];
    assert.ok(a!.length >= 3, `keyframes every 2 s over 6 s: ${a!.length}`);
    assert.equal(a!.length, b!.length);
    a!.forEach((t, i) => assert.ok(Math.abs(t - b![i]!) <= 3000, `keyframe ${i}: ${t} vs ${b![i]} (within one frame)`));
  });

  test('a WHIP source (H.264 with Opus) goes through the ladder: every rung gets video and AAC, the top one Opus too, on the source timeline', async () => {
    const whip = whipLikeFrames(dir);
    for (const f of whip) f.receivedAt = 1_000_000 + (f.dts + f.cto) / 90;
    const init = whip[0]!.init;
    const ladder: Rung[] = [
      { name: '144p', height: 144, videoKbps: 150, audioKbps: 64, priority: 1, preset: 'ultrafast' },
      { name: '90p', height: 90, videoKbps: 80, audioKbps: 48, priority: 1, preset: 'ultrafast' },
    ];
    const plan = planLadder(ladder, init);
    assert.equal(plan.passthroughOnly, undefined);
    const transcoder = new FfmpegTranscoder(plan.rungs, init, { gopSeconds: 1, opusKbps: 48, maxBacklogMs: 1500 }, pino({ level: 'silent' }));
    const out = new Map<string, Frame[]>();
    transcoder.on('frame', (rendition, frame) => {
      if (!out.has(rendition)) out.set(rendition, []);
      out.get(rendition)!.push(frame);
    });
    transcoder.start();
    for (const f of whip) transcoder.push(f);
    await transcoder.finish();
    const sourceVideo = whip.filter((f) => f.track === 'video');
    for (const rung of plan.rungs) {
      const frames = out.get(rung.name) ?? [];
      const video = frames.filter((f) => f.track === 'video');
      assert.ok(video.length >= sourceVideo.length - 2, `${rung.name}: ${video.length} of ${sourceVideo.length} pictures`);
      assert.equal(video[0]!.init.video!.height, rung.height);
      assert.ok(frames.filter((f) => f.codec === 'aac').length >= 80, `${rung.name}: AAC made from the Opus source`);
      assert.ok(Math.abs(video[0]!.dts - sourceVideo[0]!.dts) <= 90, `${rung.name} keeps the source's timeline`);
      const matched = video.filter((f) => Math.abs(f.receivedAt - (1_000_000 + f.dts / 90)) <= 2).length;
      assert.ok(matched >= video.length - 1, `${rung.name}: ${matched} of ${video.length} pictures carry their source's ingest time`);
    }
    assert.equal(transcoder.webrtcRendition, '144p');
    assert.ok((out.get('144p') ?? []).filter((f) => f.codec === 'opus').length >= 80, 'Opus on the WebRTC rung');
  });

  test('an audio-only source (AAC) gets the audio rung: the same AAC frames, Opus beside them, on the source timeline with their ingest times', async () => {
    const audio = source.filter((f) => f.track === 'audio').map((f) => ({ ...f, init: { audio: f.init.audio, metadata: {} } }));
    const init = audio[0]!.init;
    for (const f of audio) f.init = init;
    const plan = planLadder(LADDER, init);
    assert.deepEqual(
      plan.rungs.map((r) => r.name),
      ['audio'],
    );
    const transcoder = new FfmpegTranscoder(plan.rungs, init, { gopSeconds: 1, opusKbps: 48, maxBacklogMs: 1500 }, pino({ level: 'silent' }));
    const out: Frame[] = [];
    transcoder.on('frame', (rendition, frame) => {
      assert.equal(rendition, 'audio');
      out.push(frame);
    });
    transcoder.start();
    for (const f of audio) transcoder.push(f);
    await transcoder.finish();
    const aac = out.filter((f) => f.codec === 'aac');
    assert.ok(aac.length >= audio.length - 2, `${aac.length} of ${audio.length} AAC frames`);
    assert.ok(aac.every((f) => f.track === 'audio'));
    assert.ok(aac[10]!.payload.equals(audio[10]!.payload), 'AAC passes through untouched');
    assert.equal(aac[10]!.dts, audio[10]!.dts, 'on the source timeline');
    assert.equal(aac[10]!.receivedAt, audio[10]!.receivedAt, 'with its ingest time');
    const opus = out.filter((f) => f.codec === 'opus');
    assert.ok(opus.length >= 250, `${opus.length} Opus packets for 6 s`);
    assert.equal(aac.at(-1)!.init.video, undefined);
    assert.equal(aac.at(-1)!.init.opus?.codec, 'opus', 'the rendition announces its Opus');
    assert.equal(transcoder.webrtcRendition, 'audio');
  });

  test('an HEVC source (Enhanced RTMP, B-frames) goes through the ladder to H.264 rungs with AAC, on the source timeline', async () => {
    const reader = new FlvFrameReader();
    const hevc = enhancedRtmpClip(dir, 'hevc', { size: '320x180', seconds: 3, gop: 30 }).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? []);
    for (const f of hevc) f.receivedAt = 1_000_000 + (f.dts + f.cto) / 90;
    const init = hevc.find((f) => f.track === 'video')!.init;
    assert.equal(init.video?.codec, 'hevc');
    const ladder: Rung[] = [{ name: '144p', height: 144, videoKbps: 150, audioKbps: 64, priority: 1, preset: 'ultrafast' }];
    const plan = planLadder(ladder, init);
    assert.equal(plan.passthroughOnly, undefined);
    const transcoder = new FfmpegTranscoder(plan.rungs, init, { gopSeconds: 1, opusKbps: 48, maxBacklogMs: 1500 }, pino({ level: 'silent' }));
    const out: Frame[] = [];
    transcoder.on('frame', (_rendition, frame) => out.push(frame));
    transcoder.start();
    for (const f of hevc) transcoder.push(f);
    await transcoder.finish();
    const video = out.filter((f) => f.track === 'video');
    const sourceVideo = hevc.filter((f) => f.track === 'video');
    assert.ok(video.length >= sourceVideo.length - 2, `${video.length} of ${sourceVideo.length} pictures`);
    assert.equal(video[0]!.init.video!.codec, 'h264');
    assert.equal(video[0]!.init.video!.height, 144);
    assert.equal(video[0]!.init.video!.bFrames, false);
    assert.ok(out.some((f) => f.codec === 'aac') && out.some((f) => f.codec === 'opus'), 'AAC, and Opus beside it');
    const firstPts = (fs: Frame[]) => Math.min(...fs.map((f) => f.dts + f.cto));
    assert.ok(Math.abs(firstPts(video) - firstPts(sourceVideo)) <= 90, 'on the source timeline');
    const matched = video.filter((f) => Math.abs(f.receivedAt - (1_000_000 + f.dts / 90)) <= 2).length;
    assert.ok(matched >= video.length - 1, `${matched} of ${video.length} pictures carry their source's ingest time`);
  });
});
