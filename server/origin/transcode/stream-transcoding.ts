import type { RelayConfig } from '../../core/config/schema.ts';
import type { Logger } from '../../core/log.ts';
import { isRandomAccess, type Frame, type StreamInit } from '../../core/media/frame.ts';
import type { Publication } from '../../core/bus/frame-publisher.ts';
import { FfmpegTranscoder } from './ffmpeg-transcoder.ts';
import { planLadder, rungToShed } from './ladder.ts';
import type { TranscodeMetrics } from './transcode-metrics.ts';

export interface TranscodingStats {
  restarts: number;
  renditions: string[];
  /** Rungs shed because ffmpeg could not keep up, in the order they went. */
  shed: string[];
  /** The rendition carrying Opus beside AAC (the WebRTC one), if any. */
  webrtc?: string;
}

/**
 * Transcoding for one live stream: plans the ladder from the stream's own
 * configuration at its first keyframe, runs ffmpeg, and publishes every rung
 * like the source (same lease, same fencing token). ffmpeg failing never touches
 * the source: it restarts with backoff and joins again at a keyframe.
 */
export class StreamTranscoding {
  private transcoder: FfmpegTranscoder | undefined;
  private init: StreamInit | undefined;
  private readonly publications = new Map<string, Publication>();
  private restartTimer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private closed = false;
  /** Set when this source cannot be transcoded: passthrough only, said once. */
  private passthroughOnly = false;
  readonly stats: TranscodingStats = { restarts: 0, renditions: [], shed: [] };

  constructor(
    private readonly config: RelayConfig['transcode'],
    private readonly open: (rendition: string) => Publication,
    private readonly log: Logger,
    private readonly metrics?: TranscodeMetrics,
  ) {}

  /** The current ffmpeg's counters, speed and backlog. */
  get transcoderStats() {
    return this.transcoder?.stats;
  }

  /** The ffmpeg process's pid (for tests and operators). */
  get pid(): number | undefined {
    return this.transcoder?.pid;
  }

  push(frame: Frame): void {
    if (this.closed || this.passthroughOnly) return;
    const access = isRandomAccess(frame);
    if (access && frame.init !== this.init) this.restart(frame.init, 'stream configuration changed');
    if (!this.transcoder && access && this.init && !this.restartTimer) this.launch();
    this.transcoder?.push(frame);
  }

  private restart(init: StreamInit, why: string): void {
    if (this.init) this.log.info({ why }, 'restarting the transcoder');
    this.init = init;
    this.transcoder?.removeAllListeners();
    this.transcoder?.stop();
    this.transcoder = undefined;
  }

  private launch(): void {
    const plan = planLadder(this.config.ladder, this.init!);
    for (const s of plan.skipped) this.log.debug({ rendition: s.name, why: s.why }, 'rung skipped');
    plan.rungs = plan.rungs.filter((r) => !this.stats.shed.includes(r.name));
    if (plan.rungs.length === 0 && this.stats.shed.length > 0) {
      this.passthroughOnly = true;
      this.log.warn({ code: 'TRANSCODE_BEHIND', shed: this.stats.shed }, 'passthrough only: ffmpeg could not keep up with even one rung');
      return;
    }
    if (plan.passthroughOnly || plan.rungs.length === 0) {
      this.passthroughOnly = true;
      this.log.warn(
        { code: 'CODEC_UNSUPPORTED', why: plan.passthroughOnly ?? 'no rung at or below the source size' },
        'passthrough only: the ladder cannot transcode this source',
      );
      return;
    }
    const transcoder = new FfmpegTranscoder(plan.rungs, this.init!, this.config, this.log);
    this.transcoder = transcoder;
    this.stats.renditions = plan.rungs.map((r) => r.name);
    this.stats.webrtc = transcoder.webrtcRendition;
    transcoder.once('behind', (backlogMs) => {
      if (this.closed || this.transcoder !== transcoder) return;
      const rung = rungToShed(plan.rungs)!;
      this.stats.shed.push(rung.name);
      this.metrics?.shed.inc({ rendition: rung.name });
      this.log.warn(
        { code: 'TRANSCODE_BEHIND', shed: rung.name, backlogMs, speed: transcoder.stats.speed, keep: plan.rungs.filter((r) => r !== rung).map((r) => r.name) },
        'ffmpeg cannot keep up with real time: shedding the lowest-priority rung',
      );
      // The shed rendition ends for its viewers (players move to another); the others come back at the next keyframe.
      const publication = this.publications.get(rung.name);
      this.publications.delete(rung.name);
      void publication?.end();
      this.restart(this.init!, `shed ${rung.name}`);
    });
    transcoder.on('frame', (rendition, frame) => {
      this.failuresInARow = 0;
      let publication = this.publications.get(rendition);
      if (!publication) {
        publication = this.open(rendition);
        this.publications.set(rendition, publication);
      }
      publication.push(frame);
    });
    transcoder.once('exit', (code, signal) => {
      if (this.closed || this.transcoder !== transcoder) return;
      this.transcoder = undefined;
      this.failuresInARow++;
      this.stats.restarts++;
      this.metrics?.restarts.inc();
      const delay = Math.min(this.config.restartMaxMs, this.config.restartMinMs * 2 ** (this.failuresInARow - 1));
      this.log.warn(
        { code: code ?? undefined, signal: signal ?? undefined, err: transcoder.lastError || undefined, restartInMs: delay },
        'ffmpeg stopped; the source plays on, renditions come back after a restart',
      );
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
      }, delay);
      this.restartTimer.unref();
    });
    transcoder.start();
    this.log.info({ renditions: this.stats.renditions, pid: transcoder.pid }, 'transcoding');
  }

  /**
   * The stream ended: stop ffmpeg and mark the end of every rendition on the bus.
   * `replaced`: a takeover; the new publisher's renditions go on, so no end marker.
   */
  async close(replaced = false): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.transcoder?.removeAllListeners();
    this.transcoder?.stop();
    if (replaced) for (const p of this.publications.values()) p.abandon();
    else await Promise.all([...this.publications.values()].map((p) => p.end()));
  }
}
