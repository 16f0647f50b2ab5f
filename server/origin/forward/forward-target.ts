import { SRT_SECRETS, type ForwardTarget } from '../../core/config/forward-url.ts';
import type { StreamInit } from '../../core/media/frame.ts';

/** Why a stream with these codecs cannot go into the target's container as it is (no re-encoding), or undefined when it can. */
export function cannotCarry(container: ForwardTarget['container'], init: StreamInit): string | undefined {
  const video = init.video?.codec;
  const audio = init.audio?.codec;
  // ffmpeg 5.1 (Debian 12) writes FLV with H.264 and AAC only: no Enhanced RTMP (HEVC, AV1), no Opus.
  if (container === 'flv') {
    if (video && video !== 'h264') return `RTMP (FLV) cannot carry ${video} here: forward it over SRT, or publish H.264`;
    if (audio && audio !== 'aac') return `RTMP (FLV) cannot carry ${audio}: forward it over SRT, or publish AAC`;
    return undefined;
  }
  if (video === 'av1') return 'MPEG-TS cannot carry AV1 here';
  return undefined;
}

/** The container ffmpeg reads frames in: FLV for H.264 with AAC, Matroska for everything else (HEVC, AV1, Opus). */
export function inputContainer(init: StreamInit): 'flv' | 'matroska' {
  return (init.video === undefined || init.video.codec === 'h264') && init.audio?.codec !== 'opus' ? 'flv' : 'matroska';
}

/**
 * ffmpeg's arguments for one forward: frames in on stdin, copied as they are (no re-encoding) to the target.
 * `timeoutMs` bounds a target that stops reading (RTMP's rw_timeout; SRT's own peer idle timeout does the same).
 */
export function forwardArgs(target: ForwardTarget, input: 'flv' | 'matroska', timeoutMs: number): string[] {
  const out =
    target.container === 'flv'
      ? ['-rw_timeout', String(timeoutMs * 1000), '-f', 'flv', target.url]
      : // libsrt drops what is still in flight at close unless it lingers: the stream's last second reaches the target.
        ['-f', 'mpegts', '-linger', '1', target.url];
  return ['-hide_banner', '-nostats', '-loglevel', 'warning', '-f', input, '-i', 'pipe:0', '-map', '0', '-c', 'copy', ...out];
}

/** ffmpeg's last words with any secret of the target's URL taken out (it prints the URL it failed on). */
export function redact(target: ForwardTarget, text: string): string {
  let out = text.split(target.url).join(target.shown);
  const url = new URL(target.url);
  const secrets = [...url.searchParams].filter(([k]) => SRT_SECRETS.has(k)).map(([, v]) => v);
  if (target.container === 'flv') secrets.push(url.pathname.split('/').filter(Boolean).at(-1)!);
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}
