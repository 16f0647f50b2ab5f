import type { Registry } from 'prom-client';
import type { AccessKeys } from '../core/auth/access-keys.ts';
import type { FramePublisher, Publication } from '../core/bus/frame-publisher.ts';
import { SOURCE_RENDITION } from '../core/bus/subjects.ts';
import { ownBusLayout } from '../core/bus/shards.ts';
import type { StreamLease, StreamLeases } from '../core/cluster/stream-lease.ts';
import type { RelayConfig } from '../core/config/schema.ts';
import { RelayError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { IngestAdapter, IngestGateway, IngestProtocol, IngestPublication, OpenRequest, PublisherControl } from './ingest/ingest.ts';
import { createIngestMetrics, RateMeter, type IngestMetrics } from './ingest/ingest-metrics.ts';
import { RtmpIngest } from './ingest/rtmp-ingest.ts';
import { SrtIngest } from './ingest/srt/srt-ingest.ts';
import type { ForwardList, RuntimeForward } from '../core/cluster/forward-list.ts';
import { parseForwardUrl } from '../core/config/forward-url.ts';
import { createForwardMetrics, type ForwardMetrics } from './forward/forward-metrics.ts';
import { StreamForwarding, type KeyedTarget } from './forward/stream-forwarding.ts';
import { StreamTranscoding } from './transcode/stream-transcoding.ts';
import { createTranscodeMetrics, type TranscodeMetrics } from './transcode/transcode-metrics.ts';

export interface LiveStream {
  stream: string;
  remote: string;
  protocol: IngestProtocol;
  since: number;
  token: number;
  frames: number;
  /** Incoming bitrate and frame rate. */
  meter: RateMeter;
  /** Set when the publisher has left: resolves once the end marker is stored and the lease released. */
  leaving?: Promise<void>;
  /** The stream's transcoding, when on. */
  transcoding?: StreamTranscoding;
  /** The stream's forwards to other servers (streams[].forward, and those added at run time). */
  forwarding?: StreamForwarding;
  /** The publisher's connection, once accepted. */
  control?: PublisherControl;
}

/**
 * The origin role: takes publishers through its ingest adapters (RTMP, WHIP),
 * makes each the only publisher of its stream (a lease), and publishes every frame,
 * in order, to JetStream, with the stream's transcoding beside it. Adapters see
 * the origin only through its gateway (authenticate, open, refused).
 */
export class Origin {
  readonly rtmp: RtmpIngest;
  /** RTMP over TLS, when `rtmps.certFile` and `rtmps.keyFile` are set. */
  readonly rtmps: RtmpIngest | undefined;
  /** SRT (UDP), when `srt.enabled`. */
  readonly srt: SrtIngest | undefined;
  private readonly ingests: IngestAdapter[] = [];
  private readonly live = new Map<string, LiveStream>();
  private readonly log: Logger;
  private readonly transcodeMetrics: TranscodeMetrics | undefined;
  private readonly ingestMetrics: IngestMetrics | undefined;
  private readonly forwardMetrics: ForwardMetrics | undefined;
  /** Forwards of streams that ended, still finishing (their ffmpeg sending what it has): stop() waits for them. */
  private readonly endingForwards = new Set<Promise<void>>();
  private stopped: Promise<void> | undefined;
  /**
   * Asks whichever origin holds a stream to hand it over (set by the node: over NATS);
   * resolves true when it did, false when nobody answered (a dead holder's lease expires instead).
   */
  handOver: ((stream: string) => Promise<boolean>) | undefined;
  /** The forwards operators added at run time (set by the node: NATS KV); none without it. */
  forwardList: ForwardList | undefined;
  /** What ingest adapters may ask of the origin. */
  readonly gateway: IngestGateway = {
    authenticate: (key, context) => this.authenticate(key, context),
    open: (request) => this.open(request),
    refused: (protocol, reason) => this.ingestMetrics?.refusals.inc({ protocol, reason: reason.code }),
  };

  constructor(
    private readonly config: RelayConfig,
    private readonly keys: AccessKeys,
    private readonly publisher: FramePublisher,
    private readonly leases: StreamLeases,
    log: Logger,
    registry?: Registry,
  ) {
    this.log = log.child({ module: 'origin' });
    this.transcodeMetrics = registry && createTranscodeMetrics(registry, () => this.transcodeProgress());
    this.ingestMetrics = registry && createIngestMetrics(registry, () => this.live.values());
    this.forwardMetrics = registry && createForwardMetrics(registry, () => this.forwardStates());
    this.rtmp = this.addIngest(new RtmpIngest({ ...config.rtmp, log: log.child({ module: 'ingest.rtmp' }) }, this.gateway));
    const { rtmps } = config;
    if (rtmps.certFile && rtmps.keyFile) {
      // The same RTMP, limits and timeouts inside TLS, on a port of its own.
      const options = { ...config.rtmp, host: rtmps.host, port: rtmps.port, tls: rtmps, log: log.child({ module: 'ingest.rtmps' }) };
      this.rtmps = this.addIngest(new RtmpIngest(options, this.gateway));
    }
    if (config.srt.enabled) {
      const { enabled: _enabled, ...srt } = config.srt;
      this.srt = this.addIngest(new SrtIngest({ ...srt, log: log.child({ module: 'ingest.srt' }), registry }, this.gateway));
    }
  }

  /** An ingest adapter built on this origin's gateway: started by start(), closed by stop(). */
  addIngest<T extends IngestAdapter>(adapter: T): T {
    this.ingests.push(adapter);
    return adapter;
  }

  /** Every ingest adapter is listening. */
  get listening(): boolean {
    return this.ingests.every((i) => i.listening);
  }

  async start(): Promise<void> {
    for (const ingest of this.ingests) await ingest.start();
    this.log.info(
      { port: this.rtmp.port, rtmpsPort: this.rtmps?.port, app: this.config.rtmp.app, protocols: this.ingests.map((i) => i.protocol) },
      'RTMP ingest listening',
    );
  }

  /**
   * Stops taking publishers and ends the live ones cleanly: each stream's end
   * marker is stored and its lease released, so viewers see "ended" and another
   * origin may take the stream at once (no waiting for a TTL). Then the adapters
   * close. Safe to call twice.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      for (const entry of this.live.values()) {
        if (!entry.leaving) entry.control?.disconnect(new RelayError('ORIGIN_SHUTTING_DOWN'));
      }
      const leaving = [...this.live.values()].map((l) => l.leaving).filter((p): p is Promise<void> => p !== undefined);
      await Promise.race([Promise.all(leaving), new Promise((r) => setTimeout(r, 5000).unref())]);
      await Promise.all(this.endingForwards);
      for (const ingest of this.ingests) await ingest.close();
      await this.publisher.idle();
    })();
    return this.stopped;
  }

  private *transcodeProgress() {
    for (const live of this.live.values()) {
      const stats = live.transcoding?.transcoderStats;
      if (stats) yield { stream: live.stream, speed: stats.speed, backlogMs: stats.backlogMs };
    }
  }

  private track(ending: Promise<void>): void {
    this.endingForwards.add(ending);
    void ending.finally(() => this.endingForwards.delete(ending));
  }

  private *forwardStates() {
    for (const live of this.live.values()) if (live.forwarding) yield* live.forwarding.states();
  }

  liveStreams(): LiveStream[] {
    return [...this.live.values()];
  }

  /** The stream a publish key opens; STREAM_KEY_INVALID or STREAM_KEY_EXPIRED otherwise (logged without the key). */
  private authenticate(key: string, context: { protocol: IngestProtocol; remote: string }): string {
    try {
      return this.keys.streamForKey(key);
    } catch (err) {
      const code = err instanceof RelayError ? err.code : 'STREAM_KEY_INVALID';
      this.log.warn({ code, remote: context.remote, protocol: context.protocol }, 'publisher refused: wrong stream key');
      throw err;
    }
  }

  /**
   * Makes this origin the stream's only publisher, whatever the protocol: its
   * lease, then a publication for its frames and the stream's transcoding.
   * Async: taking over from a dead origin waits for its lease to expire.
   */
  private async open({ stream, remote, protocol, control }: OpenRequest): Promise<IngestPublication> {
    const refuse = (err: RelayError): never => {
      this.log.warn({ code: err.code, stream, remote, protocol, reason: err.message }, 'publisher refused');
      throw err;
    };
    const { takeover } = this.config.ingest;
    // The stream is live here: with takeover on, the newcomer (it has the key) replaces its publisher.
    const current = this.live.get(stream);
    if (takeover && current?.control) this.replace(current, { remote, protocol });
    // A publisher that just left (or was just replaced) is still handing the stream over (end marker, lease): wait for that.
    const previous = this.live.get(stream);
    if (previous) await this.handedOver(previous);
    if (this.live.has(stream)) refuse(new RelayError('STREAM_ALREADY_PUBLISHING', `stream ${stream} is live on this origin`));
    const entry: LiveStream = { stream, remote, protocol, since: Date.now(), token: 0, frames: 0, meter: new RateMeter(performance.now()) };
    this.live.set(stream, entry);
    // The run-time forwards, read beside the lease: every forward starts at the publication's first keyframe.
    const runtimeForwards = this.readForwards(stream);
    let lease: StreamLease;
    try {
      // Live on another origin: ask it to hand the stream over (it answers once its lease is released).
      if (takeover && this.handOver) {
        const holder = await this.leases.holder(stream).catch(() => undefined);
        if (holder && holder.origin !== this.leases.nodeId) {
          const answered = await this.handOver(stream);
          this.log.info({ stream, from: holder.origin, answered }, 'asked the origin holding the stream to hand it over');
        }
      }
      lease = await this.leases.acquire(stream);
    } catch (err) {
      this.live.delete(stream);
      return refuse(err instanceof RelayError ? err : new RelayError('BUS_UNAVAILABLE', String(err)));
    }
    entry.token = lease.token;
    return this.accept(entry, lease, control, await runtimeForwards);
  }

  /**
   * Another origin has a publisher with this stream's key (takeover): disconnect
   * ours with PUBLISHER_REPLACED, and resolve true once the end marker is stored and
   * the lease released, so the other origin takes the lease at once. False when the
   * stream is not live here, or takeover is off.
   */
  async release(stream: string): Promise<boolean> {
    const entry = this.live.get(stream);
    if (!this.config.ingest.takeover || !entry?.control) return false;
    this.replace(entry, { onAnotherOrigin: true });
    await this.handedOver(entry);
    return true;
  }

  /** Takeover: the publisher of `entry` is disconnected with PUBLISHER_REPLACED (once), which starts its handover. */
  private replace(entry: LiveStream, by: Record<string, unknown>): void {
    if (entry.leaving) return;
    this.log.warn({ stream: entry.stream, replaced: entry.remote, ...by }, 'publisher replaced by a new one with the stream key');
    entry.control?.disconnect(new RelayError('PUBLISHER_REPLACED'));
  }

  /** Resolves once a leaving publisher has handed its stream over (end marker stored, lease released), or after a lease's lifetime. */
  private handedOver(entry: LiveStream): Promise<unknown> {
    if (!entry.leaving) return Promise.resolve();
    return Promise.race([entry.leaving, new Promise((r) => setTimeout(r, this.config.cluster.leaseTtlMs).unref())]);
  }

  /**
   * Ends a live stream's publication (an operator's request): the publisher is
   * disconnected with STREAM_ENDED_BY_ADMIN, the end marker stored, the lease
   * released. False when the stream is not live here.
   */
  end(stream: string, reason: string): boolean {
    const entry = this.live.get(stream);
    if (!entry?.control || entry.leaving) return false;
    this.log.warn({ stream, reason }, 'stream ended by an operator');
    entry.control.disconnect(new RelayError('STREAM_ENDED_BY_ADMIN', reason));
    return true;
  }

  /** A stream's run-time forwards; none (logged) when they cannot be read: the stream goes live regardless. */
  private readForwards(stream: string): Promise<RuntimeForward[]> {
    if (!this.forwardList) return Promise.resolve([]);
    return this.forwardList.get(stream).catch((err: Error) => {
      this.log.warn({ stream, err: err.message }, 'cannot read the run-time forwards; forwarding to the configured ones');
      return [];
    });
  }

  /** The configured forwards of a stream and those added at run time, as the forwarding takes them. */
  private forwardTargets(stream: string, runtime: readonly RuntimeForward[]): KeyedTarget[] {
    const keyed = [
      ...(this.keys.entry(stream)?.forward ?? []).map((url) => ({ key: `config ${url}`, url, id: undefined })),
      ...runtime.map((f) => ({ key: `api ${f.id}`, url: f.url, id: f.id })),
    ];
    const targets: KeyedTarget[] = [];
    for (const { key, url, id } of keyed) {
      // Checked when configured or added: a URL that does not read here is skipped.
      const target = parseForwardUrl(url);
      if (typeof target !== 'string') targets.push({ key, id, target });
    }
    return targets;
  }

  /**
   * An operator changed a stream's run-time forwards: if it is live here, forward to the list as it is now (new ones
   * from the next keyframe). False when the stream is not live here.
   */
  async applyForwards(stream: string): Promise<boolean> {
    const entry = this.live.get(stream);
    if (!entry?.forwarding || !this.forwardList) return false;
    const runtime = await this.forwardList.get(stream);
    if (this.live.get(stream) !== entry || entry.leaving) return false;
    this.track(entry.forwarding.set(this.forwardTargets(stream, runtime)));
    return true;
  }

  private accept(entry: LiveStream, lease: StreamLease, control: PublisherControl, runtimeForwards: readonly RuntimeForward[]): IngestPublication {
    const { stream } = entry;
    entry.control = control;
    const log = this.log.child({ stream });
    const layout = ownBusLayout(this.config);
    // A stream that keeps less than its shard (streams[].busMaxAgeSeconds) is trimmed by its origin.
    const keepS = this.keys.entry(stream)?.busMaxAgeSeconds ?? Infinity;
    const open = (rendition: string) => {
      const subjects = layout.subjects(stream, rendition);
      const retention = keepS < this.config.bus.maxAgeSeconds ? this.publisher.retention(layout.shardOf(stream).jsStream, subjects, keepS * 1000) : undefined;
      return this.publisher.open(subjects, lease.token, () => lease.valid, retention);
    };
    const publication: Publication = open(SOURCE_RENDITION);
    const transcodeOn = this.config.transcode.enabled && this.keys.entry(stream)?.transcode !== false;
    const transcoding = transcodeOn ? new StreamTranscoding(this.config.transcode, open, log.child({ module: 'transcode' }), this.transcodeMetrics) : undefined;
    entry.transcoding = transcoding;
    const forwarding = new StreamForwarding(this.config.forward, log.child({ module: 'forward' }), this.forwardMetrics);
    this.track(forwarding.set(this.forwardTargets(stream, runtimeForwards)));
    entry.forwarding = forwarding;
    lease.once('lost', (err) => control.disconnect(err));
    let waiting = false;
    const resume = () => {
      waiting = false;
      control.resume();
    };
    log.info({ remote: entry.remote, protocol: entry.protocol, token: lease.token }, 'publisher connected');
    this.ingestMetrics?.connects.inc({ protocol: entry.protocol });
    return {
      stream,
      frame: (frame) => {
        entry.frames++;
        entry.meter.add(frame.payload.length, frame.track === 'video', performance.now());
        // Frames already read keep coming after a pause: wait for one 'drain' per stream, not one per frame.
        if (!publication.push(frame) && !waiting) {
          waiting = true;
          control.pause();
          this.publisher.once('drain', resume);
        }
        transcoding?.push(frame);
        forwarding.push(frame);
      },
      close: (reason) => {
        if (entry.leaving) return; // closed already
        this.publisher.off('drain', resume);
        log.info({ frames: entry.frames, seconds: Math.round((Date.now() - entry.since) / 1000), code: reason?.code }, 'publisher left');
        // The end marker first, then the lease: a next owner's frames always come after our last.
        // Replaced (a takeover): no end marker, so that viewers go on to the new publication without
        // seeing the stream end; its higher fencing token makes edges drop anything of ours still in flight.
        const replaced = reason?.code === 'PUBLISHER_REPLACED';
        if (replaced) publication.abandon();
        // Forwards end beside the handover, never delaying the lease a new publisher waits for.
        this.track(forwarding.close());
        entry.leaving = Promise.all([replaced ? undefined : publication.end(), transcoding?.close(replaced)])
          .then(() => lease.release())
          .finally(() => {
            if (this.live.get(stream) === entry) this.live.delete(stream);
          });
      },
    };
  }
}
