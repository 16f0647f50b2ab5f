import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { readMp4Video } from '../../../../test/helpers/enhanced-rtmp.ts';
import { readFlvFile, FIXTURE_OBS_LIKE } from '../../../../test/helpers/flv-file.ts';
import { RelayError } from '../../errors.ts';
import { FlvFrameReader } from '../flv/flv-frame-reader.ts';
import { isRandomAccess, type Frame } from '../frame.ts';
import { parseAvcC } from '../h264.ts';
import { parseHvcC } from '../hevc.ts';
import { splitAnnexB } from './elementary.ts';
import { crc32Mpeg, TS_PACKET_SIZE, TsDemuxer } from './ts-demuxer.ts';

/** The OBS-like fixture (H.264 High with B-frames, AAC-LC 48 kHz) remuxed by ffmpeg into MPEG-TS with -c copy. */
const OBS_TS = readFileSync(new URL('../../../../test/fixtures/obs-like-2s.mpegts', import.meta.url));
/** One second of Opus (stereo, 48 kHz, 20 ms packets) in MPEG-TS, by ffmpeg's libopus and mpegts muxer. */
const OPUS_TS = readFileSync(new URL('../../../../test/fixtures/opus-1s.mpegts', import.meta.url));
/** ffmpeg's mpegts muxer starts timestamps at 1.4 s (its default muxdelay + preload). */
const MUX_OFFSET = 126_000;

function flvFrames(): Frame[] {
  const reader = new FlvFrameReader();
  return readFlvFile(FIXTURE_OBS_LIKE).flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? []);
}

function demux(bytes: Buffer, chunk: number, demuxer = new TsDemuxer()): Frame[] {
  const frames: Frame[] = [];
  for (let p = 0; p < bytes.length; p += chunk) frames.push(...demuxer.push(bytes.subarray(p, p + chunk), p));
  frames.push(...demuxer.end(bytes.length));
  return frames;
}

test('H.264 with B-frames and AAC come out of MPEG-TS exactly as they went in from FLV: timestamps, order, payloads', () => {
  const expected = flvFrames();
  for (const chunk of [1316, 188, 1000, 7]) {
    const got = demux(OBS_TS, chunk);
    for (const track of ['video', 'audio'] as const) {
      const want = expected.filter((f) => f.track === track);
      const have = got.filter((f) => f.track === track);
      assert.equal(have.length, want.length, `${track} frames (chunks of ${chunk})`);
      for (let i = 0; i < want.length; i++) {
        const [w, h] = [want[i]!, have[i]!];
        // Video exact; audio within FLV's millisecond rounding (TS times each AAC frame by its 1024 samples).
        const slack = track === 'audio' ? 90 : 0;
        assert.ok(Math.abs(h.dts - MUX_OFFSET - w.dts) <= slack, `${track} ${i} dts ${h.dts - MUX_OFFSET} against ${w.dts}`);
        assert.equal(h.cto, w.cto, `${track} ${i} cto`);
        assert.equal(h.keyframe, w.keyframe, `${track} ${i} keyframe`);
        assert.ok(h.payload.equals(w.payload), `${track} ${i} payload`);
        assert.equal(h.codec, w.codec);
      }
    }
    const video = got.filter((f) => f.track === 'video');
    assert.ok(
      video.some((f) => f.cto > 0),
      'B-frames: presentation after decode',
    );
    assert.ok(
      video.every((f, i) => i === 0 || f.dts > video[i - 1]!.dts),
      'decode order',
    );
  }
});

test('the init carries the same avcC and AudioSpecificConfig as the FLV sequence headers, from the first frame on', () => {
  const want = flvFrames()[0]!.init;
  const got = demux(OBS_TS, 1316);
  const init = got[0]!.init;
  assert.ok(init.video && init.audio);
  assert.ok(init.video.config.equals(want.video!.config), 'avcC');
  assert.equal(init.video.codecString, want.video!.codecString);
  assert.deepEqual([init.video.width, init.video.height], [want.video!.width, want.video!.height]);
  // The same object type, rate and channels (FLV's carries a trailing SBR signalling extension as well).
  assert.ok(init.audio.config.equals(want.audio!.config.subarray(0, 2)), 'AudioSpecificConfig');
  assert.equal(init.audio.codecString, want.audio!.codecString);
  assert.equal(init.audio.sampleRate, 48_000);
  assert.ok(got[0]!.keyframe && got[0]!.track === 'video', 'the stream starts at a keyframe');
  assert.ok(
    got.every((f) => f.init === init),
    'one init object, shared',
  );
  assert.equal(parseAvcC(init.video.config).profile, 100, 'High profile');
});

test('Opus in MPEG-TS: 20 ms packets 1800 ticks apart, an audio-only stream whose every frame is a random access point', () => {
  const demuxer = new TsDemuxer();
  const got = demux(OPUS_TS, 1316, demuxer);
  assert.deepEqual(demuxer.tracks, { video: undefined, audio: 'opus' });
  assert.ok(got.length >= 50, `${got.length} packets`);
  assert.equal(got[0]!.dts, MUX_OFFSET);
  for (let i = 1; i < got.length; i++) assert.equal(got[i]!.dts - got[i - 1]!.dts, 1800);
  assert.ok(got.every((f) => f.codec === 'opus' && f.init.audio?.codec === 'opus' && f.init.audio.channels === 2 && isRandomAccess(f)));
});

test('a lost TS packet drops the picture it hit and video resumes at the next keyframe; audio goes on', () => {
  const packets = OBS_TS.length / TS_PACKET_SIZE;
  const whole = demux(OBS_TS, 1316);
  // Take out one packet from the middle of the first GOP's video (a continuation packet of a picture).
  const demuxer = new TsDemuxer();
  let cut = -1;
  for (let i = Math.floor(packets / 4); i < packets; i++) {
    const b = OBS_TS.subarray(i * TS_PACKET_SIZE);
    const pid = ((b[1]! & 0x1f) << 8) | b[2]!;
    if (pid === 0x100 && !(b[1]! & 0x40)) {
      cut = i;
      break;
    }
  }
  assert.ok(cut > 0);
  const damaged = Buffer.concat([OBS_TS.subarray(0, cut * TS_PACKET_SIZE), OBS_TS.subarray((cut + 1) * TS_PACKET_SIZE)]);
  const got = demux(damaged, 1316, demuxer);
  assert.equal(demuxer.stats.ccErrors, 1);
  assert.equal(demuxer.stats.pesDropped, 1);
  const video = got.filter((f) => f.track === 'video');
  const wholeVideo = whole.filter((f) => f.track === 'video');
  const lostFrom = video.findIndex((f, i) => f.dts !== wholeVideo[i]!.dts);
  const resumed = video[lostFrom]!;
  assert.ok(resumed.keyframe, 'after the gap, the next frame out is a keyframe');
  assert.equal(video.length, wholeVideo.length - (wholeVideo.findIndex((f) => f.dts === resumed.dts) - lostFrom));
  assert.ok(demuxer.stats.videoDropped > 0);
  assert.equal(got.filter((f) => f.track === 'audio').length, whole.filter((f) => f.track === 'audio').length, 'no audio lost');
});

test('lost() gives up what is being gathered: the next video frame out is a keyframe', () => {
  const demuxer = new TsDemuxer();
  const half = Math.floor(OBS_TS.length / TS_PACKET_SIZE / 3) * TS_PACKET_SIZE + 100; // mid-packet
  const first = [...demuxer.push(OBS_TS.subarray(0, half), 0)];
  demuxer.lost();
  const rest = [...demuxer.push(OBS_TS.subarray(half + 5 * TS_PACKET_SIZE), 1), ...demuxer.end(2)];
  assert.ok(first.length > 0);
  const nextVideo = rest.find((f) => f.track === 'video');
  assert.ok(nextVideo?.keyframe, 'the next picture is a keyframe');
  assert.ok(demuxer.stats.videoDropped > 0);
});

test('timestamps run on across the 33-bit wrap', () => {
  // Rewrite every PES timestamp of the fixture to sit 1 s before the wrap.
  const shifted = Buffer.from(OBS_TS);
  const shift = 2 ** 33 - MUX_OFFSET - 90_000;
  for (let p = 0; p < shifted.length; p += TS_PACKET_SIZE) {
    const b = shifted.subarray(p, p + TS_PACKET_SIZE);
    if (!(b[1]! & 0x40)) continue;
    let o = 4;
    if ((b[3]! >> 4) & 2) o = 5 + b[4]!;
    if (b[o] !== 0 || b[o + 1] !== 0 || b[o + 2] !== 1) continue;
    const flags = b[o + 7]!;
    if (flags & 0x80) writeTs(b, o + 9, (readTs(b, o + 9) + shift) % 2 ** 33, flags & 0x40 ? 3 : 2);
    if ((flags & 0xc0) === 0xc0) writeTs(b, o + 14, (readTs(b, o + 14) + shift) % 2 ** 33, 1);
  }
  const want = demux(OBS_TS, 1316);
  const got = demux(shifted, 1316);
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.equal(got[i]!.dts - want[i]!.dts, shift, `frame ${i}`);
    assert.equal(got[i]!.cto, want[i]!.cto);
  }
  assert.ok(got.at(-1)!.dts > 2 ** 33, 'past the wrap');
});

test('HEVC with B-frames comes out of MPEG-TS as ffmpeg put it in MP4: pictures, keyframes, composition offsets, and the same codec string', () => {
  const fixture = (name: string) => new URL(`../../../../test/fixtures/${name}`, import.meta.url).pathname;
  const mp4 = readMp4Video(fixture('hevc-1s.mp4'), 'hvc1', 'hvcC');
  const demuxer = new TsDemuxer();
  const video = demux(readFileSync(fixture('hevc-1s.mpegts')), 1316, demuxer).filter((f) => f.track === 'video');
  assert.deepEqual(demuxer.tracks, { video: 'hevc', audio: 'aac' });
  assert.equal(video.length, mp4.samples.length);
  for (let i = 0; i < video.length; i++) {
    const [got, want] = [video[i]!, mp4.samples[i]!];
    assert.equal(got.codec, 'hevc');
    assert.equal(got.keyframe, want.keyframe, `picture ${i} keyframe`);
    assert.equal(got.cto, (want.cto * 90_000) / mp4.timescale, `picture ${i} composition offset`);
    assert.equal(got.dts - video[0]!.dts, ((want.dts - mp4.samples[0]!.dts) * 90_000) / mp4.timescale, `picture ${i} decode time`);
    // The same NAL units; ffmpeg's MP4 muxer moved x265's SEI (its settings) from the first picture into the hvcC.
    assert.ok(withoutSei(got.payload).equals(withoutSei(want.data)), `picture ${i} payload`);
  }
  assert.ok(
    video.some((f) => f.cto > 0),
    'B-frames',
  );
  const built = parseHvcC(video[0]!.init.video!.config);
  const expected = parseHvcC(mp4.config);
  assert.deepEqual(built, expected, "the hvcC built from the parameter sets reads as ffmpeg's own");
  assert.deepEqual([video[0]!.init.video!.width, video[0]!.init.video!.height], [192, 108]);
  assert.ok(video[0]!.init.video!.config.subarray(1, 13).equals(mp4.config.subarray(1, 13)), 'profile, tier, constraints, level');
});

test('a program the relay cannot carry is refused with CODEC_UNSUPPORTED, naming what it holds', () => {
  const pmt = patchedPmt(0x1b, 0x02); // H.264 -> MPEG-2 video
  assert.throws(
    () => demux(pmt, 1316),
    (err: unknown) => err instanceof RelayError && err.code === 'CODEC_UNSUPPORTED' && /MPEG-2 video \(stream type 0x2\)/.test(err.message),
  );
  const mp3 = patchedPmt(0x0f, 0x03);
  assert.throws(
    () => demux(mp3, 1316),
    (err: unknown) => err instanceof RelayError && /MPEG-1 audio/.test(err.message),
  );
});

test('garbage between packets is skipped, and a PMT with a bad CRC is ignored until a good copy comes', () => {
  const demuxer = new TsDemuxer();
  const noisy = Buffer.concat([Buffer.from('not a transport stream at all'), OBS_TS]);
  const got = demux(noisy, 1316, demuxer);
  assert.equal(demuxer.stats.resyncBytes, 29);
  assert.equal(got.length, demux(OBS_TS, 1316).length);
  const badCrc = Buffer.from(OBS_TS);
  const pmtAt = findPmt(badCrc);
  badCrc[pmtAt + 4 + 1 + 12]! ^= 0xff; // a byte inside the first PMT's stream loop
  const late = new TsDemuxer();
  const frames = demux(badCrc, 1316, late);
  // ffmpeg repeats the PMT with the PAT every 0.1 s of packets and before keyframes: the stream starts at the next copy.
  assert.ok(frames.length > 0 && frames[0]!.keyframe);
});

test('fuzz: random bytes and random damage to a real stream never throw anything but a RelayError, nor hang', () => {
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let round = 0; round < 200; round++) {
    const data = Buffer.from(OBS_TS.subarray(0, 60 * TS_PACKET_SIZE));
    for (let i = 0; i < 40; i++) data[Math.floor(random() * data.length)] = Math.floor(random() * 256);
    if (round % 4 === 0) for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256);
    const demuxer = new TsDemuxer();
    try {
      for (let p = 0; p < data.length; p += 1316) demuxer.push(data.subarray(p, p + 1316), 0);
      demuxer.end(0);
    } catch (err) {
      assert.ok(err instanceof RelayError, `round ${round}: ${(err as Error).stack}`);
    }
  }
});

test("a picture is read at the stuffed packet that ends its PES, not a frame later at the next PES's start", () => {
  const demuxer = new TsDemuxer();
  let early = 0;
  let video = 0;
  for (let p = 0; p < OBS_TS.length; p += TS_PACKET_SIZE) {
    const packet = OBS_TS.subarray(p, p + TS_PACKET_SIZE);
    const videoStart = (((packet[1]! & 0x1f) << 8) | packet[2]!) === 0x100 && (packet[1]! & 0x40) !== 0;
    for (const f of demuxer.push(packet, p)) {
      if (f.track !== 'video') continue;
      video++;
      if (!videoStart) early++; // out before the next picture's first packet came
    }
  }
  assert.equal(video, 60);
  // All but a picture whose last packet it filled exactly (no stuffing to tell its end): that one waits for the next.
  assert.ok(early >= 58, `${early} of 60 pictures as soon as their last packet came`);
  assert.equal(demuxer.stats.earlyEndMisses, 0);
});

test('a stuffed packet in the middle of a PES turns early ends off for the stream: that picture is dropped, video resumes at a keyframe', () => {
  const ts = Buffer.from(OBS_TS);
  // The third packet of the first big picture gets an adaptation field of stuffing (its payload cut by as much).
  let seen = 0;
  let patched = -1;
  for (let p = 0; p < ts.length && patched < 0; p += TS_PACKET_SIZE) {
    if ((((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!) !== 0x100 || (ts[p + 3]! & 0x30) !== 0x10) continue;
    if (++seen === 3) patched = p;
  }
  ts[patched + 3] = (ts[patched + 3]! & 0xcf) | 0x30; // adaptation field and payload
  ts.copyWithin(patched + 4 + 12, patched + 4, patched + TS_PACKET_SIZE - 12);
  ts[patched + 4] = 11;
  ts[patched + 5] = 0;
  ts.fill(0xff, patched + 6, patched + 16);
  const demuxer = new TsDemuxer();
  const got = demux(ts, 1316, demuxer);
  assert.equal(demuxer.stats.earlyEndMisses, 1);
  const video = got.filter((f) => f.track === 'video');
  assert.ok(video.length >= 30 && video.length < 60, `${video.length} pictures: the first GOP given up from the cut one`);
  assert.ok(video.filter((f) => f.keyframe).length >= 1);
});

test('Annex B: 3- and 4-byte start codes, trailing zeros dropped', () => {
  const nals = splitAnnexB(Buffer.from([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 0, 1, 0x68, 3, 0, 0]));
  assert.deepEqual(
    nals.map((n) => [...n]),
    [
      [0x09, 0xf0],
      [0x67, 1, 2],
      [0x68, 3],
    ],
  );
});

test('CRC-32/MPEG-2: the check value of "123456789"', () => {
  assert.equal(crc32Mpeg(Buffer.from('123456789')), 0x0376e6e7);
});

/** Length-prefixed HEVC NAL units without prefix SEI (type 39). */
function withoutSei(payload: Buffer): Buffer {
  const kept: Buffer[] = [];
  for (let p = 0; p < payload.length;) {
    const n = payload.readUInt32BE(p);
    if (((payload[p + 4]! >> 1) & 0x3f) !== 39) kept.push(payload.subarray(p, p + 4 + n));
    p += 4 + n;
  }
  return Buffer.concat(kept);
}

function readTs(b: Buffer, p: number): number {
  return (b[p]! & 0x0e) * 2 ** 29 + b[p + 1]! * 2 ** 22 + (b[p + 2]! & 0xfe) * 2 ** 14 + b[p + 3]! * 2 ** 7 + (b[p + 4]! >> 1);
}

function writeTs(b: Buffer, p: number, value: number, prefix: number): void {
  b[p] = (prefix << 4) | (Math.floor(value / 2 ** 30) << 1) | 1;
  const low = value % 2 ** 30;
  b[p + 1] = (low >> 22) & 0xff;
  b[p + 2] = (((low >> 15) & 0x7f) << 1) | 1;
  b[p + 3] = (low >> 7) & 0xff;
  b[p + 4] = ((low & 0x7f) << 1) | 1;
}

/** Byte offset of the first TS packet of the fixture's PMT (PID 0x1000, ffmpeg's default). */
function findPmt(ts: Buffer): number {
  for (let p = 0; p < ts.length; p += TS_PACKET_SIZE) if ((((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!) === 0x1000) return p;
  throw new Error('no PMT');
}

/** The fixture with every PMT's stream type `from` changed to `to` (and the CRC made right again). */
function patchedPmt(from: number, to: number): Buffer {
  const ts = Buffer.from(OBS_TS);
  for (let p = 0; p < ts.length; p += TS_PACKET_SIZE) {
    if ((((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!) !== 0x1000) continue;
    const section = p + 5 + ts[p + 4]!;
    const length = 3 + (((ts[section + 1]! & 0x0f) << 8) | ts[section + 2]!);
    let e = section + 12 + (ts.readUInt16BE(section + 10) & 0x0fff);
    while (e + 5 <= section + length - 4) {
      if (ts[e] === from) ts[e] = to;
      e += 5 + (ts.readUInt16BE(e + 3) & 0x0fff);
    }
    ts.writeUInt32BE(crc32Mpeg(ts.subarray(section, section + length - 4)), section + length - 4);
  }
  return ts;
}
