import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFlvTags } from '../../test/helpers/flv-file.ts';

/**
 * The benchmarks' clip: OBS-like 720p30 at about 2.5 Mbit/s with audio (H.264 High with B-frames, AAC 48 kHz), 4 s,
 * made by ffmpeg in `dir` and read into FLV tags for the replay publishers to loop. `kbps`: its measured bitrate.
 */
export function makeObsClip(dir: string): { tags: ReturnType<typeof readFlvTags>; kbps: number } {
  const clip = join(dir, 'clip.flv');
  execFileSync('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=sample_rate=48000', '-t', '4'],
    ...['-c:v', 'libx264', '-profile:v', 'high', '-preset', 'veryfast', '-bf', '2', '-g', '60', '-pix_fmt', 'yuv420p'],
    ...['-b:v', '2300k', '-maxrate', '2300k', '-bufsize', '4600k', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-f', 'flv', clip],
  ]);
  const tags = readFlvTags(readFileSync(clip));
  return { tags, kbps: Math.round((tags.reduce((n, t) => n + t.body.length, 0) * 8) / (tags.at(-1)!.timestamp + 33)) };
}
