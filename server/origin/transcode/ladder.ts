import type { StreamInit } from '../../core/media/frame.ts';

/** One rung of the ladder: a transcoded rendition. */
export interface Rung {
  /** Rendition name in subjects and the API, e.g. `480p`. */
  name: string;
  /** Lines of video; 0 for the audio rung of an audio-only source. */
  height: number;
  videoKbps: number;
  audioKbps: number;
  /** When ffmpeg cannot keep up, the rung with the lowest priority is shed first. */
  priority: number;
  /** x264 preset; faster presets cost less CPU per rung. */
  preset: string;
}

export interface LadderPlan {
  rungs: Rung[];
  skipped: { name: string; why: string }[];
  /** Set when nothing can be transcoded: the stream goes passthrough only. */
  passthroughOnly?: string;
}

/**
 * The one rendition of an audio-only source (a radio show, a podcast): its AAC as it
 * came (encoded from an Opus source), with Opus beside it for WebRTC. No video ladder.
 */
export const AUDIO_RUNG: Rung = { name: 'audio', height: 0, videoKbps: 0, audioKbps: 128, priority: 0, preset: 'none' };

/**
 * Which rungs a source gets: never above its own height; nothing for codecs the
 * ladder does not read; for a source without video, the audio rung alone.
 */
export function planLadder(ladder: readonly Rung[], source: StreamInit): LadderPlan {
  const plan: LadderPlan = { rungs: [], skipped: [] };
  if (source.audio && source.audio.codec !== 'aac' && source.audio.codec !== 'opus')
    return { ...plan, passthroughOnly: `the source audio codec ${source.audio.codec} is not transcoded` };
  if (!source.video) {
    if (!source.audio) return { ...plan, passthroughOnly: 'the source has neither audio nor video' };
    return { rungs: [AUDIO_RUNG], skipped: ladder.map((r) => ({ name: r.name, why: 'the source has no video' })) };
  }
  if (source.video.width < 16 || source.video.height < 16) return { ...plan, passthroughOnly: `the source is ${source.video.width}x${source.video.height}` };
  for (const rung of ladder) {
    if (rung.height > source.video.height) plan.skipped.push({ name: rung.name, why: `above the source's ${source.video.height} lines` });
    else plan.rungs.push(rung);
  }
  return plan;
}

export interface FfmpegPlanOptions {
  /** Seconds between forced keyframes, the same on every rung (aligned GOPs). */
  gopSeconds: number;
  hasAudio: boolean;
  /** Opus audio beside the AAC, on one more output (Ogg); 0 for none. */
  opusKbps: number;
  /** What stdin carries: FLV (H.264 with AAC, from RTMP) or Matroska (Opus from WHIP, HEVC and AV1 from Enhanced RTMP). */
  input?: 'flv' | 'matroska';
}

/** The stream's WebRTC rendition (Opus beside the AAC, video without B-frames): the highest rung it has. */
export function webrtcRung(rungs: readonly Rung[]): Rung | undefined {
  return rungs.reduce<Rung | undefined>((best, r) => (!best || r.height > best.height ? r : best), undefined);
}

/** The rung to shed first when ffmpeg falls behind: the lowest priority, then the most expensive (tallest). */
export function rungToShed(rungs: readonly Rung[]): Rung | undefined {
  return rungs.reduce<Rung | undefined>(
    (worst, r) => (!worst || r.priority < worst.priority || (r.priority === worst.priority && r.height > worst.height) ? r : worst),
    undefined,
  );
}

/**
 * ffmpeg arguments: FLV (or Matroska) on stdin, one FLV output per rung on file descriptors
 * 3, 4, ..., then, when asked for, Opus in Ogg on the next one (FLV cannot
 * carry Opus; Ogg keeps its timing in granule positions). Timestamps are kept (-copyts) so that every rendition shares the
 * source's timeline, and keyframes are forced by one expression on every rung,
 * so that they fall on the same frames. x264 `zerolatency` (no lookahead, no
 * B-frames) keeps the added latency low and every rung WebRTC-safe for video.
 */
export function ffmpegArgs(rungs: readonly Rung[], options: FfmpegPlanOptions): string[] {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    '-probesize',
    '65536',
    '-analyzeduration',
    '200000',
    '-f',
    options.input ?? 'flv',
    '-i',
    'pipe:0',
    '-copyts',
  ];
  rungs.forEach((rung, i) => {
    if (rung.height === 0) {
      // The audio rung: AAC copied as it came (an FLV input carries AAC), or encoded from Opus.
      args.push('-map', '0:a:0', '-vn');
      if ((options.input ?? 'flv') === 'flv') args.push('-c:a', 'copy');
      else args.push('-c:a', 'aac', '-b:a', `${rung.audioKbps}k`, '-ar', '48000', '-ac', '2');
      args.push('-flush_packets', '1', '-flvflags', 'no_duration_filesize', '-f', 'flv', `pipe:${3 + i}`);
      return;
    }
    args.push('-map', '0:v:0');
    if (options.hasAudio) args.push('-map', '0:a:0');
    args.push(
      '-vf',
      `scale=-2:${rung.height}:flags=bicubic`,
      '-c:v',
      'libx264',
      '-preset',
      rung.preset,
      '-tune',
      'zerolatency',
      '-profile:v',
      'main',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      `${rung.videoKbps}k`,
      '-maxrate',
      `${rung.videoKbps}k`,
      '-bufsize',
      `${rung.videoKbps * 2}k`,
      '-force_key_frames',
      `expr:gte(t,n_forced*${options.gopSeconds})`,
      '-g',
      '9999',
      '-keyint_min',
      '9999',
      '-sc_threshold',
      '0',
      // Encode in the input's time base (1 ms): one guessed from the frame rate (30.3 fps for a
      // Matroska input with B-frames, 29.97 for NTSC) would round every picture off the source's time.
      '-enc_time_base:v',
      '-1',
    );
    if (options.hasAudio) args.push('-c:a', 'aac', '-b:a', `${rung.audioKbps}k`, '-ar', '48000', '-ac', '2');
    // Flush each packet: a pipe's 32 KB buffer would otherwise hold a low rung for most of a second.
    args.push('-flush_packets', '1', '-flvflags', 'no_duration_filesize', '-f', 'flv', `pipe:${3 + i}`);
  });
  if (options.hasAudio && options.opusKbps > 0) {
    // One Opus packet (20 ms) per Ogg page, flushed at once: the page's granule then dates that packet alone.
    args.push(
      '-map',
      '0:a:0',
      '-c:a',
      'libopus',
      '-b:a',
      `${options.opusKbps}k`,
      '-ar',
      '48000',
      '-ac',
      '2',
      '-frame_duration',
      '20',
      '-page_duration',
      '20000',
      '-flush_packets',
      '1',
      '-f',
      'ogg',
      `pipe:${3 + rungs.length}`,
    );
  }
  return args;
}
