import type { NatsConnection } from '../../server/core/bus/nats.ts';
import type { RegionalBus } from '../../server/core/bus/regional-bus.ts';
import type { RelayConfig } from '../../server/core/config/schema.ts';
import type { Logger } from '../../server/core/log.ts';
import { isRandomAccess, type Frame, type StreamInit } from '../../server/core/media/frame.ts';
import { Fmp4Muxer, type Fragment } from '../../server/core/media/mp4/fmp4-muxer.ts';
import { AUDIO_TRACK_ID, buildInitSegment, mimeType, VIDEO_TIMESCALE, VIDEO_TRACK_ID } from '../../server/core/media/mp4/init-segment.ts';
import type { EdgeMetrics } from '../edge-metrics.ts';
import type { Egress, EgressFactory, MuxedInit, RenditionView } from '../egress/egress.ts';
import { PublicationFilter, type FilterEvents, type FilterStats } from '../../server/core/bus/publication-filter.ts';
import { StreamFeed } from '../feed/stream-feed.ts';
import type { RenditionState } from '../protocol.ts';
import { GopCache } from './gop-cache.ts';

/** Audio waits this long for a video frame to ride with before it goes out on its own. */
const AUDIO_FLUSH_MS = 120;
/** A live stream with no frame for this long is shown offline (its origin died without an end marker). */
const SILENT_OFFLINE_MS = 5000;
/** A consumer that cannot start (NATS away) is tried again after this long. */
const START_RETRY_MS = 2000;
/**
 * Free bytes the muxer leaves in front of each fragment, so that an egress can
 * write its transport's framing there once for all its viewers (a WebSocket
 * binary frame header is at most 10 bytes).
 */
const FRAGMENT_HEADROOM = 16;

export interface RenditionDeps {
  nc: NatsConnection;
  /** Where each stream's frames are read from (its shard, or a copy in this region). */
  bus: RegionalBus;
  config: RelayConfig;
  metrics: EdgeMetrics;
  log: Logger;
}

/**
 * One rendition of one stream on one edge: one bus consumer, the publication
 * filter, one muxer, the init and the GOP, and the egresses plugged into it
 * (WebSocket fMP4, WHEP, ...), which own their viewers. Closing it closes its
 * egresses, their viewers and its consumer.
 */
export class Rendition implements RenditionView {
  state: RenditionState = 'connecting';
  init: MuxedInit | undefined;
  readonly egresses: readonly Egress[];
  private readonly filter: PublicationFilter;
  private readonly feed: StreamFeed;
  private readonly gopCache: GopCache;
  private muxer: Fmp4Muxer | undefined;
  private lastVideoAt = 0;
  private lastFrameAt = 0;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly housekeeping: NodeJS.Timeout;
  private retry: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  /** Fragments muxed so far. */
  fragments = 0;

  constructor(
    readonly stream: string,
    readonly rendition: string,
    private readonly deps: RenditionDeps,
    egresses: readonly EgressFactory[],
    private readonly onViewerLeft: (rendition: Rendition) => void,
  ) {
    const { config, metrics, log } = deps;
    this.gopCache = new GopCache(config.edge.gopCacheMaxBytes);
    this.filter = new PublicationFilter(config.cluster.leaseTtlMs + 2000);
    this.feed = new StreamFeed(
      deps.nc,
      {
        locate: () => deps.bus.source(stream, rendition),
        maxMessages: config.edge.consumerMaxMessages,
        watchdogIntervalMs: config.edge.watchdogIntervalMs,
        log,
      },
      (data) => this.message(data),
      (reason) => {
        metrics.bus.restarts.inc();
        this.filter.resetDecoder();
        log.info({ reason }, 'stream consumer recreated');
      },
    );
    this.egresses = egresses.map((make) => make(this));
    this.flushTimer = setInterval(() => this.flushIdleAudio(), AUDIO_FLUSH_MS / 2).unref();
    this.housekeeping = setInterval(() => this.housekeep(), 1000).unref();
  }

  /** Starts consuming, at the bus's last keyframe; retried until it works or the rendition closes. */
  start(): void {
    this.feed.start().then(
      (start) => {
        if (this.state === 'connecting' && start.kind === 'new') this.setState('offline');
      },
      (err: Error) => {
        if (this.closing) return;
        this.deps.log.warn({ err: err.message }, 'cannot start the stream consumer; retrying');
        this.retry = setTimeout(() => this.start(), START_RETRY_MS).unref();
      },
    );
  }

  /** The egress of a kind, to add a viewer to: `rendition.egress(WsEgress)`. */
  egress<T extends Egress>(kind: abstract new (...args: never[]) => T): T | undefined {
    return this.egresses.find((e): e is T => e instanceof kind);
  }

  get gop(): readonly Fragment[] {
    return this.gopCache.current;
  }

  get gopSeconds(): number | undefined {
    const ticks = this.gopCache.gopTicks;
    return ticks === undefined ? undefined : ticks / 90_000;
  }

  /** Viewers of every egress. */
  get viewerCount(): number {
    let n = 0;
    for (const e of this.egresses) n += e.viewerCount;
    return n;
  }

  /** Someone needs it (a viewer, or a stream's WebRTC viewers using it as a layer): it lingers, then closes, when nobody does. */
  get inUse(): boolean {
    return this.viewerCount > 0 || this.egresses.some((e) => e.holding === true);
  }

  viewerLeft(): void {
    if (!this.closing) this.onViewerLeft(this);
  }

  /** Messages on the bus for this rendition's consumer, not yet delivered. */
  get pending(): number {
    return this.feed.pending;
  }

  get feedStats() {
    return this.feed.stats;
  }

  /** What the publication filter saw: frames, gaps, stale, bad and duplicate messages. */
  get stats(): FilterStats {
    return this.filter.stats;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Closes the egresses (and their viewers), then the consumer. Safe to call twice. */
  close(draining?: { edge: string | undefined }): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.flushTimer);
      clearInterval(this.housekeeping);
      clearTimeout(this.retry);
      for (const e of this.egresses) e.close(draining);
      await this.feed.close();
    })();
    return this.closing;
  }

  private setState(state: RenditionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const e of this.egresses) e.state?.(state);
  }

  private message(data: Uint8Array): void {
    if (this.closing) return;
    const out = this.filter.push(data, performance.now());
    if (out.events) this.report(out.events);
    switch (out.kind) {
      case 'skip':
        return;
      case 'end':
        return this.ended();
      case 'frame':
        return this.frame(out.frame);
    }
  }

  private report(events: FilterEvents): void {
    const { log, metrics } = this.deps;
    if (events.tokenForgotten) {
      log.warn(
        { token: events.tokenForgotten.was, now: events.tokenForgotten.now },
        'the newest publication has been silent past a lease lifetime; accepting a lower token',
      );
    }
    if (events.invalid) log.warn({ code: 'BUS_MESSAGE_INVALID', err: events.invalid }, 'unreadable message on the bus; waiting for the next keyframe');
    if (events.newPublication) {
      // A new publication: its clock starts over, so viewers get a new init even if the codecs match.
      this.muxer = undefined;
      for (const e of this.egresses) e.restart?.();
    }
    if (events.gap) {
      metrics.gaps.inc();
      log.warn({ expected: events.gap.expected, got: events.gap.got }, 'frames missing on the bus; resuming at the next keyframe');
    }
  }

  private ended(): void {
    // The audio after the last video frame goes out too (a recording of the stream has it: viewers should).
    const rest = this.muxer?.flushAudio();
    if (rest) this.fragment(rest);
    this.muxer = undefined;
    this.init = undefined;
    this.gopCache.clear();
    for (const e of this.egresses) e.restart?.();
    this.setState('ended');
  }

  private frame(frame: Frame): void {
    const now = performance.now();
    this.lastFrameAt = now;
    if (isRandomAccess(frame) && (!this.muxer || this.muxer.init !== frame.init)) this.newInit(frame.init);
    for (const e of this.egresses) e.frame?.(frame);
    if (!this.muxer) return;
    if (this.state !== 'live') this.setState('live'); // frames again after a silence
    if (frame.track === 'video') this.lastVideoAt = now;
    const fragment = this.muxer.push(frame);
    if (fragment) this.fragment(fragment);
  }

  private newInit(init: StreamInit): void {
    try {
      this.muxer = new Fmp4Muxer(init, { headroom: FRAGMENT_HEADROOM });
      this.init = {
        init,
        segment: buildInitSegment(init),
        mime: mimeType(init),
        timescales: { [VIDEO_TRACK_ID]: VIDEO_TIMESCALE, [AUDIO_TRACK_ID]: init.audio?.sampleRate ?? 48000 },
      };
    } catch (err) {
      this.muxer = undefined;
      this.init = undefined;
      this.deps.log.warn({ err: (err as Error).message }, 'cannot mux this stream for MSE');
      return;
    }
    this.gopCache.clear();
    this.setState('live');
    for (const e of this.egresses) e.init?.(this.init);
  }

  /** The per-fragment path: into the GOP, then to each egress (each fans out from the one buffer). */
  private fragment(fragment: Fragment): void {
    this.fragments++;
    this.gopCache.push(fragment);
    for (const e of this.egresses) e.fragment?.(fragment);
  }

  private flushIdleAudio(): void {
    if (!this.muxer || this.muxer.pendingAudioFrames === 0 || performance.now() - this.lastVideoAt < AUDIO_FLUSH_MS) return;
    const fragment = this.muxer.flushAudio();
    if (fragment) this.fragment(fragment);
  }

  /** Once a second: a silent live stream is shown offline; egresses apply their time-based policies. */
  private housekeep(): void {
    const now = performance.now();
    if (this.state === 'live' && now - this.lastFrameAt > SILENT_OFFLINE_MS) this.setState('offline');
    for (const e of this.egresses) e.housekeep?.(now);
  }
}
