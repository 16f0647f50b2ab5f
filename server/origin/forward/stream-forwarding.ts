import { spawn, type ChildProcess } from 'node:child_process';
import type { ForwardState, ForwardStatus } from '../../core/cluster/node-registry.ts';
import type { ForwardTarget } from '../../core/config/forward-url.ts';
import type { RelayConfig } from '../../core/config/schema.ts';
import type { Logger } from '../../core/log.ts';
import { FlvWriter } from '../../core/media/flv/flv-writer.ts';
import { isRandomAccess, TICKS_PER_SECOND, type Frame, type StreamInit } from '../../core/media/frame.ts';
import { MatroskaWriter } from '../../core/media/matroska/matroska-writer.ts';
import type { ForwardMetrics } from './forward-metrics.ts';
import { cannotCarry, forwardArgs, inputContainer, redact } from './forward-target.ts';

/** How long an ending ffmpeg may take to send what it has and close the target's stream before it is killed. */
const END_GRACE_MS = 2000;

/** Timestamps go in this much after the first frame's: audio read just before the first keyframe is never negative. */
const START_MARGIN_TICKS = TICKS_PER_SECOND;

/**
 * One stream forwarded to one target by an ffmpeg that copies it (no re-encoding): frames go in on its stdin from
 * a keyframe on; it stopping (the target refused, went away, stopped reading for forward.timeoutMs) is tried again
 * with backoff from the next keyframe, and never touches the stream or the other targets. A thin adapter: the
 * arguments, the containers and the redaction are pure (forward-target.ts).
 */
class Forwarder {
  state: ForwardState = 'waiting';
  restarts = 0;
  droppedFrames = 0;
  error: string | undefined;
  private child: ChildProcess | undefined;
  private writer: FlvWriter | MatroskaWriter | undefined;
  private init: StreamInit | undefined;
  /** Subtracted from every timestamp of the current ffmpeg: its input starts near zero. */
  private base = 0;
  private startedAt = 0;
  private failuresInARow = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** After frames were dropped, go on only from a keyframe. */
  private resync = false;
  private stderr = '';
  /** ffmpeg processes not gone yet (one stopped for new codec parameters may still be finishing). */
  private readonly exiting = new Set<Promise<void>>();

  constructor(
    readonly target: ForwardTarget,
    private readonly options: RelayConfig['forward'],
    private readonly log: Logger,
    private readonly metrics: ForwardMetrics | undefined,
  ) {}

  push(frame: Frame): void {
    if (this.state === 'closed' || this.state === 'retrying') return;
    const access = isRandomAccess(frame);
    // New codec parameters: a new ffmpeg, whose input starts with them.
    if (access && this.init && frame.init !== this.init) this.stopChild();
    if (!this.child) {
      if (!access || (this.state === 'unsupported' && frame.init === this.init)) return;
      this.launch(frame);
    }
    const stdin = this.child?.stdin;
    if (!stdin || !this.writer) return;
    if (stdin.writableLength > this.options.maxQueueBytes || (this.resync && !access)) {
      this.resync = true;
      this.droppedFrames++;
      this.metrics?.dropped.inc();
      return;
    }
    this.resync = false;
    stdin.write(this.writer.frame({ ...frame, dts: frame.dts - this.base }));
  }

  private launch(first: Frame): void {
    const init = first.init;
    this.init = init;
    const why = cannotCarry(this.target.container, init);
    if (why) {
      this.state = 'unsupported';
      this.error = why;
      this.log.warn({ code: 'CODEC_UNSUPPORTED', target: this.target.shown, why }, 'this stream cannot be forwarded to the target as it is');
      return;
    }
    const input = inputContainer(init);
    this.writer = input === 'flv' ? new FlvWriter() : new MatroskaWriter();
    this.base = first.dts - START_MARGIN_TICKS;
    this.stderr = '';
    const child = spawn('ffmpeg', forwardArgs(this.target, input, this.options.timeoutMs), { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child = child;
    const exit: Promise<void> = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.exiting.delete(exit);
        resolve();
        this.stopped(child, code, signal);
      }),
    );
    this.exiting.add(exit);
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.stdin.on('error', () => {}); // EPIPE when ffmpeg stops: its close reports it
    child.once('error', (err) => this.log.warn({ target: this.target.shown, err: err.message }, 'cannot start ffmpeg'));
    child.stdin.write(this.writer.start(init));
    this.state = 'running';
    this.startedAt = performance.now();
    this.resync = false;
    this.log.info({ target: this.target.shown, pid: child.pid }, 'forwarding');
  }

  /** ffmpeg ended: on its own (tried again after a backoff), or because we stopped it. */
  private stopped(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return; // stopped by us (new codec parameters, the end)
    this.child = undefined;
    if (this.state === 'closed') return;
    // A forward that ran a while before it failed starts its backoff again from the shortest delay.
    if (performance.now() - this.startedAt >= this.options.restartMaxMs) this.failuresInARow = 0;
    this.failuresInARow++;
    this.restarts++;
    this.metrics?.restarts.inc();
    const said = this.stderr.trim().split('\n').slice(-2).join(' | ');
    this.error = redact(this.target, said) || `ffmpeg exited with ${code ?? signal}`;
    const delay = Math.min(this.options.restartMaxMs, this.options.restartMinMs * 2 ** (this.failuresInARow - 1));
    this.log.warn(
      { code: 'FORWARD_FAILED', target: this.target.shown, exit: code ?? signal, err: this.error, retryInMs: delay },
      'forward stopped; trying again',
    );
    this.state = 'retrying';
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === 'retrying') this.state = 'waiting';
    }, delay);
    this.retryTimer.unref();
  }

  /** Ends the current ffmpeg's input: it sends what it has, closes the target's stream and exits (killed if it lingers). */
  private stopChild(): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.stdin!.end();
    const kill = setTimeout(() => child.kill('SIGKILL'), Math.min(END_GRACE_MS, this.options.timeoutMs));
    kill.unref();
    child.once('close', () => clearTimeout(kill));
  }

  status(): ForwardStatus {
    return { target: this.target.shown, state: this.state, restarts: this.restarts, droppedFrames: this.droppedFrames, error: this.error };
  }

  /** Resolves once ffmpeg is gone. Safe to call twice. */
  async close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.stopChild();
    await Promise.all(this.exiting);
  }
}

/**
 * A live stream's forwards (streams[].forward): one ffmpeg per target, started at the publication's first keyframe,
 * ended with it. Owned by the origin's live stream, beside its transcoding.
 */
export class StreamForwarding {
  private readonly forwarders: Forwarder[];

  constructor(targets: readonly ForwardTarget[], options: RelayConfig['forward'], log: Logger, metrics?: ForwardMetrics) {
    this.forwarders = targets.map((t) => new Forwarder(t, options, log, metrics));
  }

  push(frame: Frame): void {
    for (const f of this.forwarders) f.push(frame);
  }

  statuses(): ForwardStatus[] {
    return this.forwarders.map((f) => f.status());
  }

  *states(): Iterable<ForwardState> {
    for (const f of this.forwarders) yield f.state;
  }

  close(): Promise<void> {
    return Promise.all(this.forwarders.map((f) => f.close())).then(() => undefined);
  }
}
