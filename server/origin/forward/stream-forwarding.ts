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

/** Audio kept from a publication's start until its first keyframe, at most (about 2 s of AAC). */
const LEAD_MAX_FRAMES = 100;

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
    /** Its id, when an operator added it at run time (the admin API removes it by id). */
    private readonly id: string | undefined,
    private readonly options: RelayConfig['forward'],
    private readonly log: Logger,
    private readonly metrics: ForwardMetrics | undefined,
  ) {}

  /** `lead`: audio the publication began with, before this first keyframe: sent ahead of it. */
  push(frame: Frame, lead: readonly Frame[] = []): void {
    if (this.state === 'closed' || this.state === 'retrying') return;
    const access = isRandomAccess(frame);
    // New codec parameters: a new ffmpeg, whose input starts with them.
    if (access && this.init && frame.init !== this.init) this.stopChild();
    if (!this.child) {
      if (!access || (this.state === 'unsupported' && frame.init === this.init)) return;
      this.launch(frame, lead);
    }
    const stdin = this.child?.stdin;
    if (!stdin || !this.writer) return;
    for (const early of lead) stdin.write(this.writer.frame(early, -this.base));
    if (stdin.writableLength > this.options.maxQueueBytes || (this.resync && !access)) {
      this.resync = true;
      this.droppedFrames++;
      this.metrics?.dropped.inc();
      return;
    }
    this.resync = false;
    stdin.write(this.writer.frame(frame, -this.base));
  }

  private launch(first: Frame, lead: readonly Frame[]): void {
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
    this.base = Math.min(first.dts, lead[0]?.dts ?? first.dts) - START_MARGIN_TICKS;
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
    return { id: this.id, target: this.target.shown, state: this.state, restarts: this.restarts, droppedFrames: this.droppedFrames, error: this.error };
  }

  /** Resolves once ffmpeg is gone. Safe to call twice. */
  async close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.stopChild();
    await Promise.all(this.exiting);
  }
}

/** A forward as the origin asks for it: `key` tells one apart across changes (the configured URL, or the run-time id). */
export interface KeyedTarget {
  key: string;
  /** Set for forwards added at run time. */
  id?: string;
  target: ForwardTarget;
}

/**
 * A live stream's forwards (streams[].forward, and those added at run time): one ffmpeg per target, started at a
 * keyframe, ended with the publication. Owned by the origin's live stream, beside its transcoding.
 */
export class StreamForwarding {
  private readonly forwarders = new Map<string, Forwarder>();
  private closed = false;
  /** Until the publication's first keyframe: the audio before it, which the forwards send ahead of it (every frame). */
  private lead: Frame[] | undefined = [];

  constructor(
    private readonly options: RelayConfig['forward'],
    private readonly log: Logger,
    private readonly metrics?: ForwardMetrics,
  ) {}

  /**
   * Forwards to exactly these targets: new ones start at the next keyframe, ones no longer listed end, the others
   * go on untouched. Resolves once the ended ones' ffmpeg are gone.
   */
  set(targets: readonly KeyedTarget[]): Promise<void> {
    if (this.closed) return Promise.resolve();
    const keep = new Set(targets.map((t) => t.key));
    const ending: Promise<void>[] = [];
    for (const [key, forwarder] of this.forwarders) {
      if (keep.has(key)) continue;
      this.forwarders.delete(key);
      ending.push(forwarder.close());
    }
    for (const t of targets) {
      if (!this.forwarders.has(t.key)) this.forwarders.set(t.key, new Forwarder(t.target, t.id, this.options, this.log, this.metrics));
    }
    return Promise.all(ending).then(() => undefined);
  }

  push(frame: Frame): void {
    if (this.lead) {
      if (!isRandomAccess(frame)) {
        if (frame.track === 'audio' && this.lead.length < LEAD_MAX_FRAMES) this.lead.push(frame);
        return; // nothing to start from yet
      }
      const lead = this.lead;
      this.lead = undefined;
      for (const f of this.forwarders.values()) f.push(frame, lead);
      return;
    }
    for (const f of this.forwarders.values()) f.push(frame);
  }

  statuses(): ForwardStatus[] {
    return [...this.forwarders.values()].map((f) => f.status());
  }

  *states(): Iterable<ForwardState> {
    for (const f of this.forwarders.values()) yield f.state;
  }

  /** Ends every forward; resolves once their ffmpeg are gone. Safe to call twice. */
  close(): Promise<void> {
    this.closed = true;
    const all = [...this.forwarders.values()];
    this.forwarders.clear();
    return Promise.all(all.map((f) => f.close())).then(() => undefined);
  }
}
