import { spawn, type ChildProcess } from 'node:child_process';

export interface PublisherOptions {
  url: string;
  size?: string;
  fps?: number;
  /** Keyframe interval in frames (OBS-like default: 2 s). */
  gop?: number;
  bitrate?: string;
  /** Stop after this many seconds (default: run until stopped). */
  seconds?: number;
  /** Loop a file with -c copy instead of encoding (cheap, for many streams). */
  file?: string;
  /** With `file`: how many times to play it (default: forever). */
  loops?: number;
  /** With `file`: send as fast as possible instead of in real time. */
  fast?: boolean;
  /** What to send (encoded sources): both tracks (default), audio only (a radio show) or video only. */
  tracks?: 'audio+video' | 'audio' | 'video';
  /** rtmps:// only: check the server's certificate against this CA file (PEM). */
  tlsCa?: string;
}

export interface Publisher {
  process: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * An OBS-like publisher: H.264 High with B-frames, AAC-LC 48 kHz stereo, over RTMP, RTMPS or
 * SRT (the command in shared/docs/field-notes.md, smaller by default to spare 2 cores).
 */
export function startPublisher(options: PublisherOptions): Publisher {
  const { url, size = '640x360', fps = 30, gop = fps * 2, bitrate = '1000k', seconds, file, loops, fast = false, tracks = 'audio+video' } = options;
  const video = tracks !== 'audio';
  const videoArgs = ['-c:v', 'libx264', '-profile:v', 'high', '-preset', 'veryfast', '-bf', '2', '-g', String(gop), '-keyint_min', String(gop)];
  videoArgs.push('-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v', bitrate);
  const audio = tracks !== 'video';
  const args = file
    ? [...(fast ? [] : ['-re']), '-stream_loop', String(loops === undefined ? -1 : loops - 1), '-i', file, '-c', 'copy']
    : [
        '-re',
        ...(video ? ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}`] : []),
        ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'] : []),
        ...(video ? videoArgs : []),
        ...(audio ? ['-c:a', 'aac', '-ar', '48000', '-ac', '2'] : []),
      ];
  const tlsArgs = options.tlsCa ? ['-tls_verify', '1', '-ca_file', options.tlsCa] : [];
  const child = spawn(
    'ffmpeg',
    // srt:// carries MPEG-TS (the URL says the latency, linger and the rest); rtmp(s):// FLV.
    [
      '-hide_banner',
      '-v',
      'error',
      '-nostdin',
      ...args,
      ...(seconds ? ['-t', String(seconds)] : []),
      '-f',
      url.startsWith('srt://') ? 'mpegts' : 'flv',
      ...tlsArgs,
      url,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    process: child,
    stderr: () => err,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
