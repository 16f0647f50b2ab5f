/**
 * Enhanced RTMP v1 publishers for tests. Debian's ffmpeg 5.1 cannot write HEVC or AV1
 * into FLV (that came in 6.1), so the clip is encoded by ffmpeg into MP4, its video
 * samples and configuration record read back here, and the FLV tags written as OBS
 * 30+ sends them: `[1 FrameType PacketType] FourCC` (SequenceStart with hvcC/av1C,
 * then CodedFrames: HEVC with a composition offset, AV1 without), with AAC audio
 * from ffmpeg's own FLV.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { readFlvFile, type FlvTag } from './flv-file.ts';
import { boxes, type Box } from './mp4-read.ts';
import { readFileSync } from 'node:fs';

interface Mp4Video {
  /** hvcC or av1C, as in the sample entry. */
  config: Buffer;
  timescale: number;
  samples: { dts: number; cto: number; keyframe: boolean; data: Buffer }[];
}

const child = (parent: Box, type: string): Box => {
  const found = boxes(parent.body).find((b) => b.type === type);
  if (!found) throw new Error(`no ${type} in ${parent.type}`);
  return found;
};

/** The one video track of a plain (not fragmented) MP4: its samples from the sample tables. */
export function readMp4Video(file: string, entry: string, configBox: string): Mp4Video {
  const mp4 = readFileSync(file);
  const moov = boxes(mp4).find((b) => b.type === 'moov')!;
  const trak = boxes(moov.body).find((b) => b.type === 'trak')!;
  const mdia = child(trak, 'mdia');
  const mdhd = child(mdia, 'mdhd').body;
  const timescale = mdhd[0] === 1 ? mdhd.readUInt32BE(20) : mdhd.readUInt32BE(12);
  const stbl = child(child(mdia, 'minf'), 'stbl');
  const table = (type: string) => boxes(stbl.body).find((b) => b.type === type)?.body;
  // stsd: version/flags, count, then the sample entry: 8-byte header, 78 bytes of visual fields, then boxes.
  const stsd = table('stsd')!;
  const sampleEntry = boxes(stsd, 8)[0]!;
  if (sampleEntry.type !== entry) throw new Error(`sample entry ${sampleEntry.type}, not ${entry}`);
  const config = boxes(sampleEntry.body, 78).find((b) => b.type === configBox)!.body;
  const sizes = ((b) => Array.from({ length: b.readUInt32BE(8) }, (_, i) => b.readUInt32BE(12 + 4 * i)))(table('stsz')!);
  const offsets = ((b) => Array.from({ length: b.readUInt32BE(4) }, (_, i) => b.readUInt32BE(8 + 4 * i)))(table('stco')!);
  const stsc = table('stsc')!;
  const runs = Array.from({ length: stsc.readUInt32BE(4) }, (_, i) => ({ first: stsc.readUInt32BE(8 + 12 * i), perChunk: stsc.readUInt32BE(12 + 12 * i) }));
  const stts = table('stts')!;
  const deltas: number[] = [];
  for (let i = 0; i < stts.readUInt32BE(4); i++) for (let n = 0; n < stts.readUInt32BE(8 + 8 * i); n++) deltas.push(stts.readUInt32BE(12 + 8 * i));
  const ctts = table('ctts');
  const ctos: number[] = [];
  if (ctts) for (let i = 0; i < ctts.readUInt32BE(4); i++) for (let n = 0; n < ctts.readUInt32BE(8 + 8 * i); n++) ctos.push(ctts.readInt32BE(12 + 8 * i));
  const stss = table('stss');
  const sync = stss ? new Set(Array.from({ length: stss.readUInt32BE(4) }, (_, i) => stss.readUInt32BE(8 + 4 * i) - 1)) : undefined;
  const samples: Mp4Video['samples'] = [];
  let sample = 0;
  let dts = 0;
  offsets.forEach((offset, chunk) => {
    const run = runs.filter((r) => r.first <= chunk + 1).at(-1)!;
    let at = offset;
    for (let i = 0; i < run.perChunk && sample < sizes.length; i++, sample++) {
      samples.push({ dts, cto: ctos[sample] ?? 0, keyframe: sync ? sync.has(sample) : true, data: mp4.subarray(at, at + sizes[sample]!) });
      at += sizes[sample]!;
      dts += deltas[sample] ?? 0;
    }
  });
  return { config, timescale, samples };
}

const tag = (type: number, timestamp: number, body: Buffer): FlvTag => ({ type, timestamp, body });

/**
 * An OBS-like Enhanced RTMP clip: `codec` video (HEVC by libx265 with B-frames, or AV1 by
 * SVT-AV1) at `size`, keyframes every `gop` frames, with AAC 48 kHz; tags in send order.
 */
export function enhancedRtmpClip(dir: string, codec: 'hevc' | 'av1', options: { size?: string; seconds?: number; fps?: number; gop?: number } = {}): FlvTag[] {
  const { size = '320x180', seconds = 4, fps = 30, gop = 30 } = options;
  const video = join(dir, `${codec}.mp4`);
  const audio = join(dir, `${codec}-audio.flv`);
  const encoder =
    codec === 'hevc'
      ? ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `log-level=error:bframes=2:keyint=${gop}:min-keyint=${gop}:scenecut=0`, '-tag:v', 'hvc1']
      : ['-c:v', 'libsvtav1', '-preset', '12', '-g', String(gop), '-svtav1-params', 'scd=0'];
  execFileSync('ffmpeg', [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}`, '-t', String(seconds)],
    ...encoder,
    ...['-pix_fmt', 'yuv420p', '-b:v', '400k', '-an', video],
  ]);
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    '-c:a',
    'aac',
    '-ar',
    '48000',
    '-ac',
    '2',
    '-f',
    'flv',
    audio,
  ]);
  const [entry, configBox, fourCC] = codec === 'hevc' ? ['hvc1', 'hvcC', 'hvc1'] : ['av01', 'av1C', 'av01'];
  const mp4 = readMp4Video(video, entry, configBox);
  const ms = (t: number) => Math.round((t * 1000) / mp4.timescale);
  const [width, height] = size.split('x').map(Number) as [number, number];
  const exHeader = (frameType: number, packetType: number) =>
    Buffer.concat([Buffer.from([0x80 | (frameType << 4) | packetType]), Buffer.from(fourCC, 'latin1')]);
  const tags: FlvTag[] = [];
  // onMetaData as OBS sends it: the FourCC as the video codec id.
  tags.push(tag(18, 0, onMetaData({ width, height, framerate: fps, videocodecid: fourCC, audiocodecid: 10 })));
  tags.push(tag(9, 0, Buffer.concat([exHeader(1, 0), mp4.config])));
  for (const s of mp4.samples) {
    const frameType = s.keyframe ? 1 : 2;
    if (codec === 'hevc') {
      const cto = Buffer.alloc(3);
      cto.writeIntBE(ms(s.cto), 0, 3);
      tags.push(tag(9, ms(s.dts), Buffer.concat([exHeader(frameType, 1), cto, s.data])));
    } else {
      tags.push(tag(9, ms(s.dts), Buffer.concat([exHeader(frameType, 1), s.data])));
    }
  }
  for (const t of readFlvFile(audio)) if (t.type === 8) tags.push(t);
  // Send order, as OBS's: the metadata and both configurations first, then the frames by time.
  const isConfig = (t: FlvTag) => t.type === 18 || (t.type === 9 && (t.body[0]! & 0x0f) === 0) || (t.type === 8 && t.body[1] === 0);
  return [...tags.filter(isConfig), ...tags.filter((t) => !isConfig(t)).sort((a, b) => a.timestamp - b.timestamp)];
}

/** An AMF0 `onMetaData` script tag body with an ECMA array of numbers and strings. */
function onMetaData(values: Record<string, number | string>): Buffer {
  const str = (s: string) => Buffer.concat([Buffer.from([(s.length >> 8) & 0xff, s.length & 0xff]), Buffer.from(s, 'latin1')]);
  const parts: Buffer[] = [Buffer.from([2]), str('onMetaData'), Buffer.from([8, 0, 0, 0, Object.keys(values).length])];
  for (const [key, value] of Object.entries(values)) {
    parts.push(str(key));
    if (typeof value === 'number') {
      const n = Buffer.alloc(9);
      n[0] = 0;
      n.writeDoubleBE(value, 1);
      parts.push(n);
    } else parts.push(Buffer.from([2]), str(value));
  }
  parts.push(Buffer.from([0, 0, 9]));
  return Buffer.concat(parts);
}
