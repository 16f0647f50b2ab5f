import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { isRandomAccess, TICKS_PER_MS, type Frame, type StreamInit } from '../../core/media/frame.ts';
import type { Logger } from '../../core/log.ts';
import { FlvFrameReader } from '../../core/media/flv/flv-frame-reader.ts';
import { FlvTagStream } from '../../core/media/flv/flv-tag-stream.ts';
import { FlvWriter } from '../../core/media/flv/flv-writer.ts';
import { MatroskaWriter } from '../../core/media/matroska/matroska-writer.ts';
import { ffmpegArgs, webrtcRung, type Rung } from './ladder.ts';
import { OggOpusReader } from '../../core/media/ogg/ogg-opus-reader.ts';
import { OPUS_SAMPLE_RATE, opusConfig } from '../../core/media/opus.ts';

export interface TranscoderOptions {
  /** Seconds between forced keyframes on every rung. */
  gopSeconds: number;
  /** Opus beside AAC on the WebRTC rung (kbit/s); 0 for none. */
  opusKbps: number;
  /** Output trailing input by more than this much media time means ffmpeg cannot keep up. */
  maxBacklogMs: number;
}

/**
 * ffmpeg's AAC encoder starts 1024 samples (21 ms) before its input (priming). A source
 * whose audio starts at 0, as OBS's does, would make those times negative, and the FLV
 * muxer would shift everything later to avoid them: every rung 21 ms off the source's
 * timeline. So frames go in this much later, and come back moved by as much.
 */
const INPUT_OFFSET_TICKS = 10 * 90_000;

/** How often progress is checked and speed sampled. */
const PROGRESS_INTERVAL_MS = 1000;
/** Weight of the newest speed sample in the smoothed speed. */
const SPEED_SMOOTHING = 0.3;

/**
 * Source frames remembered to give transcoded frames their ingest time. They are
 * matched by presentation time: a transcoded frame has no B-frames, so its decode
 * time is its presentation time, which a B-frame source's decode time is not.
 */
const RECEIVED_AT_MEMORY = 512;

/**
 * One ffmpeg child process transcoding one stream into its ladder: source frames
 * go in through stdin as FLV (Matroska for Opus sources), each rung comes back on a pipe of its own as FLV
 * and leaves as frames ('frame' events). A thin adapter: the pure parts are the
 * FLV writer and reader and the ladder plan.
 */
export class FfmpegTranscoder extends EventEmitter<{
  frame: [rendition: string, frame: Frame];
  exit: [code: number | null, signal: string | null];
  /** ffmpeg cannot keep up with real time (said once per process). */
  behind: [backlogMs: number];
}> {
  private child: ChildProcess | undefined;
  /** FLV for H.264 with AAC; Matroska for Opus (a WHIP source), HEVC and AV1. */
  private readonly writer: { start(init: StreamInit): Buffer; frame(frame: Frame, shiftTicks?: number): Buffer };
  private readonly receivedAt = new Map<number, number>();
  /** Source audio, oldest first: [presentation ms, ingest time]; Opus packets do not line up with AAC frames. */
  private readonly audioReceivedAt: [number, number][] = [];
  /** The track whose time measures progress: video, or audio for an audio-only source. */
  private readonly clockTrack: 'video' | 'audio';
  private stderr = '';
  /** After dropped input, feed ffmpeg again only from a keyframe: its decoder cannot start mid-GOP. */
  private resync = false;
  /** The WebRTC rung, and whether Opus rides beside its AAC (the source has audio). */
  private readonly webrtc: { name: string; opus: boolean; init?: StreamInit } | undefined;
  /** Each rung's init as published, derived once per init its output announces: its video marked B-frame free, Opus added on the WebRTC rung. */
  private readonly rungInits = new Map<string, { from: StreamInit; init: StreamInit }>();
  /** Media time (ms) of the newest video frame fed in, and of each rung's newest output. */
  private inputMs: number | undefined;
  private readonly outputMs = new Map<string, number>();
  private progressTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private lastProgress: { at: number; ms: number } | undefined;
  private saidBehind = false;
  /**
   * ingestTimeMissed: output frames whose source frame was not found (they get the output time).
   * speed: output media time per wall-clock time, smoothed (1 = real time). backlogMs: output behind input, media time.
   */
  readonly stats = {
    framesIn: 0,
    framesOut: 0,
    opusFrames: 0,
    droppedIn: 0,
    ingestTimeMissed: 0,
    speed: undefined as number | undefined,
    backlogMs: undefined as number | undefined,
  };

  constructor(
    private readonly rungs: readonly Rung[],
    private readonly init: StreamInit,
    private readonly options: TranscoderOptions,
    private readonly log: Logger,
  ) {
    super();
    // FLV carries H.264 with AAC; Opus (WHIP), HEVC and AV1 (Enhanced RTMP, which ffmpeg 5.1 cannot read) go in Matroska.
    const flv = init.audio?.codec !== 'opus' && (init.video === undefined || init.video.codec === 'h264');
    this.writer = flv ? new FlvWriter() : new MatroskaWriter();
    this.clockTrack = init.video ? 'video' : 'audio';
    const top = webrtcRung(rungs);
    this.webrtc = top && { name: top.name, opus: init.audio !== undefined && options.opusKbps > 0 };
  }

  /** The rendition that carries Opus beside AAC, if any. */
  get webrtcRendition(): string | undefined {
    return this.webrtc?.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get lastError(): string {
    return this.stderr.trim().split('\n').slice(-3).join(' | ');
  }

  start(): void {
    const args = ffmpegArgs(this.rungs, {
      gopSeconds: this.options.gopSeconds,
      hasAudio: this.init.audio !== undefined,
      opusKbps: this.webrtc?.opus ? this.options.opusKbps : 0,
      input: this.writer instanceof MatroskaWriter ? 'matroska' : 'flv',
    });
    const outputs = this.rungs.length + (this.webrtc?.opus ? 1 : 0);
    const child = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe', ...Array.from({ length: outputs }, () => 'pipe' as const)] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.stdin!.on('error', () => {}); // EPIPE when ffmpeg dies: the exit event reports it
    child.once('error', (err) => this.log.warn({ err: err.message }, 'cannot start ffmpeg'));
    child.once('exit', (code, signal) => {
      clearInterval(this.progressTimer);
      this.emit('exit', code, signal);
    });
    this.startedAt = performance.now();
    this.progressTimer = setInterval(() => this.checkProgress(), PROGRESS_INTERVAL_MS);
    this.progressTimer.unref();
    this.rungs.forEach((rung, i) => {
      const tags = new FlvTagStream();
      const reader = new FlvFrameReader();
      const output = child.stdio[3 + i] as Readable;
      output.on('error', () => {});
      output.on('data', (chunk: Buffer) => {
        let frames: Frame[];
        try {
          frames = tags.push(chunk).flatMap((t) => reader.push(t.type, t.timestampMs, t.body, 0) ?? []);
        } catch (err) {
          this.log.warn({ rendition: rung.name, err: (err as Error).message }, 'unreadable ffmpeg output; restarting it');
          this.stop();
          return;
        }
        for (const frame of frames) {
          frame.dts -= INPUT_OFFSET_TICKS;
          const ms = (frame.dts + frame.cto) / TICKS_PER_MS;
          if (frame.track === 'video') {
            const ingested = this.ingestTimeOf(frame);
            if (ingested === undefined) this.stats.ingestTimeMissed++;
            frame.receivedAt = ingested ?? performance.timeOrigin + performance.now();
          } else {
            frame.receivedAt = this.audioIngestTime(ms);
          }
          if (frame.track === this.clockTrack) this.outputMs.set(rung.name, ms);
          frame.init = this.rungInit(rung.name, frame.init);
          this.stats.framesOut++;
          this.emit('frame', rung.name, frame);
        }
      });
    });
    if (this.webrtc?.opus) this.readOpus(child.stdio[3 + this.rungs.length] as Readable, this.webrtc);
    child.stdin!.write(this.writer.start(this.init));
  }

  /** Opus packets from the Ogg pipe become audio frames of the WebRTC rung, beside its AAC. */
  private readOpus(output: Readable, webrtc: NonNullable<FfmpegTranscoder['webrtc']>): void {
    const reader = new OggOpusReader();
    output.on('error', () => {});
    output.on('data', (chunk: Buffer) => {
      let packets;
      try {
        packets = reader.push(chunk);
      } catch (err) {
        this.log.warn({ rendition: webrtc.name, err: (err as Error).message }, 'unreadable ffmpeg Opus output; restarting it');
        this.stop();
        return;
      }
      for (const packet of packets) {
        if (!webrtc.init) continue; // nothing to attach it to before the rung's first frame
        // ffmpeg's timeline: the packet's start less the encoder's pre-skip (its priming samples play first).
        const start = packet.start - (reader.head?.preSkip ?? 0);
        const dts = Math.round((start * TICKS_PER_MS * 1000) / OPUS_SAMPLE_RATE) - INPUT_OFFSET_TICKS;
        const endMs = ((start + packet.samples) * 1000) / OPUS_SAMPLE_RATE - INPUT_OFFSET_TICKS / TICKS_PER_MS;
        this.stats.opusFrames++;
        this.emit('frame', webrtc.name, {
          track: 'audio',
          codec: 'opus',
          dts,
          cto: 0,
          keyframe: true,
          payload: packet.payload,
          receivedAt: this.audioIngestTime(endMs),
          init: webrtc.init,
        });
      }
    });
  }

  private rungInit(rendition: string, init: StreamInit): StreamInit {
    const known = this.rungInits.get(rendition);
    if (known?.from === init) return known.init;
    const derived: StreamInit = { ...init };
    if (init.video) derived.video = { ...init.video, bFrames: false }; // x264 zerolatency makes none
    if (this.webrtc?.name === rendition && this.webrtc.opus) derived.opus = opusConfig(2);
    this.rungInits.set(rendition, { from: init, init: derived });
    if (this.webrtc?.name === rendition) this.webrtc.init = derived;
    return derived;
  }

  /** The ingest time of the newest source audio frame an Opus packet ending at `endMs` was made from. */
  private audioIngestTime(endMs: number): number {
    const memory = this.audioReceivedAt;
    for (let i = memory.length - 1; i >= 0; i--) {
      if (memory[i]![0] <= endMs + 1) return memory[i]![1];
    }
    return performance.timeOrigin + performance.now();
  }

  /**
   * Once a second: speed against real time, and whether the output falls ever
   * further behind the input. A publisher that pauses pauses both, so only a
   * slow ffmpeg makes the backlog grow.
   */
  private checkProgress(): void {
    const now = performance.now();
    let slowest: number | undefined;
    for (const rung of this.rungs) {
      const ms = this.outputMs.get(rung.name);
      if (ms === undefined) {
        slowest = undefined;
        break;
      }
      slowest = slowest === undefined ? ms : Math.min(slowest, ms);
    }
    if (slowest === undefined) {
      // A rung still silent long after the start: ffmpeg is not keeping up at all.
      const waited = now - this.startedAt;
      if (this.inputMs !== undefined && waited > Math.max(5000, 3 * this.options.maxBacklogMs)) this.sayBehind(waited);
      return;
    }
    if (this.lastProgress && now > this.lastProgress.at) {
      const sample = Math.max(0, (slowest - this.lastProgress.ms) / (now - this.lastProgress.at));
      this.stats.speed = this.stats.speed === undefined ? sample : this.stats.speed + SPEED_SMOOTHING * (sample - this.stats.speed);
    }
    this.lastProgress = { at: now, ms: slowest };
    if (this.inputMs === undefined) return;
    const backlog = this.inputMs - slowest;
    // A jump in the source's clock makes the difference meaningless until the output catches up with it.
    if (backlog < 0 || backlog > 60_000) {
      this.stats.backlogMs = undefined;
      return;
    }
    this.stats.backlogMs = backlog;
    if (backlog > this.options.maxBacklogMs) this.sayBehind(backlog);
  }

  private sayBehind(backlogMs: number): void {
    if (this.saidBehind) return;
    this.saidBehind = true;
    this.emit('behind', Math.round(backlogMs));
  }

  /** Feeds a source frame. A transcoder that cannot keep up has its input dropped, never the source's. */
  push(frame: Frame): void {
    const stdin = this.child?.stdin as Writable | undefined;
    if (!stdin || !this.running) return;
    if (frame.track === this.clockTrack) this.inputMs = (frame.dts + frame.cto) / TICKS_PER_MS;
    if (stdin.writableLength > 4 * 1024 * 1024) {
      this.stats.droppedIn++;
      this.resync = true;
      this.sayBehind(this.stats.backlogMs ?? this.options.maxBacklogMs);
      return;
    }
    if (this.resync) {
      if (!isRandomAccess(frame)) {
        this.stats.droppedIn++;
        return;
      }
      this.resync = false;
    }
    if (frame.track === 'video') {
      this.receivedAt.set(Math.round((frame.dts + frame.cto) / TICKS_PER_MS), frame.receivedAt);
      if (this.receivedAt.size > RECEIVED_AT_MEMORY) this.receivedAt.delete(this.receivedAt.keys().next().value!);
    } else {
      this.audioReceivedAt.push([(frame.dts + frame.cto) / TICKS_PER_MS, frame.receivedAt]);
      if (this.audioReceivedAt.length > RECEIVED_AT_MEMORY) this.audioReceivedAt.shift();
    }
    this.stats.framesIn++;
    stdin.write(this.writer.frame(frame, INPUT_OFFSET_TICKS));
  }

  /** The ingest time of the source frame presented at this frame's time (ffmpeg re-rounds by a millisecond or so). */
  private ingestTimeOf(frame: Frame): number | undefined {
    const ms = Math.round((frame.dts + frame.cto) / TICKS_PER_MS);
    for (const d of [0, -1, 1, -2, 2]) {
      const at = this.receivedAt.get(ms + d);
      if (at !== undefined) return at;
    }
    return undefined;
  }

  /** Ends the input and waits for ffmpeg to flush every rung and exit. */
  finish(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      this.child!.once('exit', () => resolve());
      this.child!.stdin!.end();
    });
  }

  stop(): void {
    clearInterval(this.progressTimer);
    if (!this.running) return;
    this.child!.stdin!.end();
    this.child!.kill('SIGKILL');
  }
}
