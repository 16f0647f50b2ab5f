import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { TICKS_PER_MS, type Frame, type StreamInit } from '../media/frame.ts';
import type { Logger } from '../log.ts';
import { FlvFrameReader } from '../ingest/flv-frame-reader.ts';
import { FlvTagStream } from './flv-tag-stream.ts';
import { FlvWriter } from './flv-writer.ts';
import { ffmpegArgs, type Rung } from './ladder.ts';

/**
 * Source frames remembered to give transcoded frames their ingest time. They are
 * matched by presentation time: a transcoded frame has no B-frames, so its decode
 * time is its presentation time, which a B-frame source's decode time is not.
 */
const RECEIVED_AT_MEMORY = 512;

/**
 * One ffmpeg child process transcoding one stream into its ladder: source frames
 * go in through stdin as FLV, each rung comes back on a pipe of its own as FLV
 * and leaves as frames ('frame' events). A thin adapter: the pure parts are the
 * FLV writer and reader and the ladder plan.
 */
export class FfmpegTranscoder extends EventEmitter<{ frame: [rendition: string, frame: Frame]; exit: [code: number | null, signal: string | null] }> {
  private child: ChildProcess | undefined;
  private readonly writer = new FlvWriter();
  private readonly receivedAt = new Map<number, number>();
  private stderr = '';
  /** After dropped input, feed ffmpeg again only from a keyframe: its decoder cannot start mid-GOP. */
  private resync = false;
  /** ingestTimeMissed: output frames whose source frame was not found (they get the output time). */
  readonly stats = { framesIn: 0, framesOut: 0, droppedIn: 0, ingestTimeMissed: 0 };

  constructor(private readonly rungs: readonly Rung[], private readonly init: StreamInit, private readonly gopSeconds: number, private readonly log: Logger) {
    super();
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
    const args = ffmpegArgs(this.rungs, { gopSeconds: this.gopSeconds, hasAudio: this.init.audio !== undefined });
    const child = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe', ...this.rungs.map(() => 'pipe' as const)] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.stdin!.on('error', () => {}); // EPIPE when ffmpeg dies: the exit event reports it
    child.once('error', (err) => this.log.warn({ err: err.message }, 'cannot start ffmpeg'));
    child.once('exit', (code, signal) => this.emit('exit', code, signal));
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
          const ingested = frame.track === 'video' ? this.ingestTimeOf(frame) : undefined;
          if (frame.track === 'video' && ingested === undefined) this.stats.ingestTimeMissed++;
          frame.receivedAt = ingested ?? performance.timeOrigin + performance.now();
          this.stats.framesOut++;
          this.emit('frame', rung.name, frame);
        }
      });
    });
    child.stdin!.write(this.writer.start(this.init));
  }

  /** Feeds a source frame. A transcoder that cannot keep up has its input dropped, never the source's. */
  push(frame: Frame): void {
    const stdin = this.child?.stdin as Writable | undefined;
    if (!stdin || !this.running) return;
    if (stdin.writableLength > 4 * 1024 * 1024) {
      this.stats.droppedIn++;
      this.resync = true;
      return;
    }
    if (this.resync) {
      if (!(frame.track === 'video' && frame.keyframe)) {
        this.stats.droppedIn++;
        return;
      }
      this.resync = false;
    }
    if (frame.track === 'video') {
      this.receivedAt.set(Math.round((frame.dts + frame.cto) / TICKS_PER_MS), frame.receivedAt);
      if (this.receivedAt.size > RECEIVED_AT_MEMORY) this.receivedAt.delete(this.receivedAt.keys().next().value!);
    }
    this.stats.framesIn++;
    stdin.write(this.writer.frame(frame));
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
    if (!this.running) return;
    this.child!.stdin!.end();
    this.child!.kill('SIGKILL');
  }
}
