import type { StreamSettings } from '../server/core/auth/access-keys.ts';
import { jetstreamManager, type NatsConnection, type Subscription } from '../server/core/bus/nats.ts';
import { RenditionCatalog } from '../server/core/bus/rendition-catalog.ts';
import { ownBusLayout } from '../server/core/bus/shards.ts';
import { SubjectKind } from '../server/core/bus/subjects.ts';
import { readToken } from '../server/core/bus/frame-codec.ts';
import { serveRecordingControl, type RecordReply, type RecordRequest } from '../server/core/cluster/stream-control.ts';
import type { StreamLease, StreamLeases } from '../server/core/cluster/stream-lease.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import type { Logger } from '../server/core/log.ts';
import type { Frame } from '../server/core/media/frame.ts';
import { Recording, type RecordingOptions } from './recording.ts';
import { recordingPaths, type RecordingMeta } from '../server/core/recording/model.ts';
import { RecordingLibrary } from '../server/core/recording/library.ts';
import type { RecordingStore } from '../server/core/recording/store.ts';
import { parseDurableName, RenditionRecorder, type RenditionFiles } from './rendition-recorder.ts';

export interface RecorderDeps {
  nc: NatsConnection;
  config: RelayConfig;
  store: RecordingStore;
  /** Leases in their own bucket: one recorder records a stream, whichever. */
  leases: StreamLeases;
  /** The stream's settings (`streams[].record`), when it has an entry. */
  streamSettings: (stream: string) => StreamSettings | undefined;
  log: Logger;
}

/** A stream whose recording stopped (ended, nothing new) is let go after this long: its consumers removed, its lease released. */
const LINGER_MS = 10_000;
/** A stream this recorder could not take (another holds it) is not tried again sooner. */
const RETRY_MS = 2_000;

/** The subject a finished recording is announced on (JSON: the recording, as the API lists it). */
export const recordingEventSubject = (prefix: string, stream: string) => `${prefix}_events.recording.${stream}`;

/**
 * The recorder role: records streams from the bus, each by exactly one recorder (a lease per stream in its own
 * bucket), each chosen rendition through a durable consumer. It learns that a stream went live from the keyframes
 * on the bus (a plain subscription: one message per GOP per rendition), so a recording starts at the publication's
 * first keyframe. At start it resumes the durable consumers a recorder left (a crash, a restart).
 */
export class Recorder {
  private readonly streams = new Map<string, StreamRecorder>();
  private readonly triedAt = new Map<string, number>();
  /** Streams whose lease is being taken: one attempt at a time (the bus's keyframes and a restart's leftovers race). */
  private readonly taking = new Set<string>();
  /** What operators asked for a publication (start or stop recording it), by stream. */
  private readonly overrides = new Map<string, RecordRequest>();
  private stopServingControl: (() => void) | undefined;
  private subs: Subscription[] = [];
  private retention: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly catalog: RenditionCatalog;
  private readonly library: RecordingLibrary;

  constructor(private readonly deps: RecorderDeps) {
    this.library = new RecordingLibrary(deps.store);
    this.catalog = new RenditionCatalog(deps.nc, async () => ownBusLayout(deps.config));
  }

  /** Whether publication `token` of `stream` is recorded: as an operator asked for it, else its own `record`, else `recording.enabled`. */
  shouldRecord(stream: string, token: number | undefined): boolean {
    const asked = this.overrides.get(stream);
    if (asked && asked.token === token) return asked.record;
    return this.deps.streamSettings(stream)?.record ?? this.deps.config.recording.enabled;
  }

  /** Whether a rendition is one `recording.renditions` asks for. */
  wants(rendition: string): boolean {
    const { renditions } = this.deps.config.recording;
    return renditions.includes('*') || renditions.includes(rendition);
  }

  async start(): Promise<void> {
    const { nc, config, log } = this.deps;
    const prefix = config.bus.subjectPrefix;
    const layout = ownBusLayout(config);
    this.subs = layout.shards.map((shard) =>
      nc.subscribe(`${shard.prefix}.*.*.${SubjectKind.KEYFRAME}`, {
        callback: (_err, msg) => {
          const [, stream, rendition] = msg.subject.split('.').slice(-4);
          if (stream && rendition) this.live(stream, rendition, readToken(msg.data));
        },
      }),
    );
    this.stopServingControl = serveRecordingControl(nc, prefix, (stream, request) => this.control(stream, request));
    // Consumers a recorder left behind: their streams are taken up again (the lease tells whether another has them).
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const leftover = new Map<string, string[]>();
    for (const shard of layout.shards) {
      for await (const c of jsm.consumers.list(shard.jsStream)) {
        const parsed = parseDurableName(c.name);
        if (parsed) leftover.set(parsed.stream, [...(leftover.get(parsed.stream) ?? []), parsed.rendition]);
      }
    }
    for (const [stream, renditions] of leftover) void this.take(stream, renditions, true);
    // Recordings left open with no consumer to go on from (a recorder stopped while making the MP4, or down past the
    // bus's retention) are completed with what they have.
    const repaired: string[] = [];
    for (const meta of await this.list()) {
      if (meta.status !== 'recording' || leftover.has(meta.stream)) continue;
      const recording = await Recording.load(
        this.deps.store,
        meta.id,
        log,
        this.recordingOptions((m) => this.finished(m)),
      );
      if (!recording) continue;
      await recording.close();
      await recording.done;
      repaired.push(meta.id);
    }
    log.info({ resuming: [...leftover.keys()], completed: repaired }, 'recorder started');
    this.retention = setInterval(() => void this.applyRetention(), 60_000).unref();
    void this.applyRetention();
  }

  /** A keyframe of `stream`'s `rendition` was published (under lease `token`): record it, if it should be and no recorder does. */
  private live(stream: string, rendition: string, token: number | undefined): void {
    if (this.closed || !this.wants(rendition) || !this.shouldRecord(stream, token)) return;
    const current = this.streams.get(stream);
    if (current) return current.add(rendition);
    const at = this.triedAt.get(stream) ?? 0;
    if (Date.now() - at < RETRY_MS) return;
    this.triedAt.set(stream, Date.now());
    void this.take(stream, [rendition], false);
  }

  /**
   * An operator asks to start or stop recording a stream's publication. Every recorder keeps the request (it holds for
   * that publication); the one recording the stream stops, or one takes it and starts, and answers.
   */
  private async control(stream: string, request: RecordRequest): Promise<RecordReply | undefined> {
    this.overrides.set(stream, request);
    if (this.overrides.size > 10_000) this.overrides.delete(this.overrides.keys().next().value!);
    const nodeId = this.deps.leases.nodeId;
    if (!request.record) {
      const current = this.streams.get(stream);
      if (!current || current.stopping) return undefined;
      const ended = await current.stopRecording();
      return { recorder: nodeId, recording: ended[0] };
    }
    if (!this.streams.has(stream)) {
      const live = (await this.catalog.renditions(stream).catch(() => [])).map((r) => r.name).filter((n) => this.wants(n));
      if (live.length === 0) return undefined;
      await this.take(stream, live, false);
    }
    const current = this.streams.get(stream);
    if (!current) return undefined; // another recorder has it
    return { recorder: nodeId, recording: await current.recordingOf(request.token) };
  }

  private async take(stream: string, renditions: string[], leftover: boolean): Promise<void> {
    if (this.streams.has(stream) || this.taking.has(stream) || this.closed) return;
    this.taking.add(stream);
    const { leases, log } = this.deps;
    let lease: StreamLease;
    try {
      lease = await leases.acquire(stream);
    } catch (err) {
      log.debug({ stream, err: (err as Error).message }, 'another recorder records this stream');
      return;
    } finally {
      this.taking.delete(stream);
    }
    if (this.closed) return void (await lease.release().catch(() => {}));
    const recorder = new StreamRecorder(stream, lease, this.deps, this, () => this.streams.delete(stream));
    this.streams.set(stream, recorder);
    // Other renditions live now that should be recorded too (a ladder's rungs).
    const live = leftover ? [] : await this.catalog.renditions(stream).catch(() => []);
    for (const r of new Set([...renditions, ...live.map((l) => l.name).filter((n) => this.wants(n))])) recorder.add(r);
  }

  /** Streams being recorded here now, and their renditions. */
  get recording(): Map<string, string[]> {
    return new Map([...this.streams].map(([s, r]) => [s, r.renditionNames]));
  }

  /** Recordings in the store, newest first. */
  list(stream?: string): Promise<RecordingMeta[]> {
    return this.library.list(stream);
  }

  /** `recording.maxAgeHours` and `recording.maxTotalBytes`: complete recordings go, oldest first. */
  async applyRetention(now = Date.now()): Promise<string[]> {
    const { maxAgeHours, maxTotalBytes } = this.deps.config.recording;
    if (maxAgeHours <= 0 && maxTotalBytes <= 0) return [];
    try {
      const removed = retentionVictims(await this.list(), now, { maxAgeHours, maxTotalBytes });
      for (const id of removed) await this.deps.store.remove(id);
      if (removed.length) this.deps.log.info({ removed }, 'recordings deleted by retention');
      return removed;
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'recording retention failed');
      return [];
    }
  }

  /** How recordings are made here. */
  recordingOptions(finished: (meta: RecordingMeta) => void): RecordingOptions {
    return { mp4: this.deps.config.recording.mp4, order: this.deps.config.recording.renditions, finished };
  }

  /** A recording is complete: announced on NATS, and to the webhook when one is set. */
  finished(meta: RecordingMeta): void {
    const { nc, config, log } = this.deps;
    void this.applyRetention();
    try {
      nc.publish(recordingEventSubject(config.bus.subjectPrefix, meta.stream), JSON.stringify(meta));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot announce the recording on NATS');
    }
    const url = config.recording.webhookUrl;
    if (!url) return;
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(meta), signal: AbortSignal.timeout(10_000) }).then(
      (res) => {
        if (!res.ok) log.warn({ url, status: res.status }, 'the recording webhook refused the recording');
      },
      (err: Error) => log.warn({ url, err: err.message }, 'cannot reach the recording webhook'),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retention);
    for (const s of this.subs.splice(0)) s.unsubscribe();
    this.stopServingControl?.();
    await Promise.all([...this.streams.values()].map((s) => s.close()));
  }
}

/**
 * The recordings retention deletes, pure: complete ones older than `maxAgeHours` (by their end), then the oldest
 * while all of them take more than `maxTotalBytes` (segments and MP4). Recordings still being made are never touched,
 * though they count in the total. 0: no limit.
 */
export function retentionVictims(recordings: readonly RecordingMeta[], now: number, limits: { maxAgeHours: number; maxTotalBytes: number }): string[] {
  const size = (r: RecordingMeta) => r.bytes + (r.mp4?.bytes ?? 0);
  const oldestFirst = [...recordings].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  let total = oldestFirst.reduce((sum, r) => sum + size(r), 0);
  const out: string[] = [];
  for (const r of oldestFirst) {
    if (r.status !== 'complete') continue;
    const old = limits.maxAgeHours > 0 && now - Date.parse(r.endedAt ?? r.startedAt) > limits.maxAgeHours * 3_600_000;
    const over = limits.maxTotalBytes > 0 && total > limits.maxTotalBytes;
    if (!old && !over) continue;
    total -= size(r);
    out.push(r.id);
  }
  return out;
}

/** One stream recorded here: its lease, a recorder per rendition, its recordings by publication. */
class StreamRecorder {
  private readonly renditions = new Map<string, RenditionRecorder>();
  private readonly recordings = new Map<number, Promise<Recording>>();
  private readonly log: Logger;
  private readonly timer: NodeJS.Timeout;
  private quietSince: number | undefined;
  private stopAsked = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly stream: string,
    private readonly lease: StreamLease,
    private readonly deps: RecorderDeps,
    private readonly owner: Recorder,
    private readonly onClosed: () => void,
  ) {
    this.log = deps.log.child({ stream });
    lease.once('lost', (err) => {
      this.log.warn({ code: err.code }, 'recording lease lost: another recorder takes the stream over');
      void this.close();
    });
    this.timer = setInterval(() => void this.housekeep(), 1000).unref();
  }

  /** Letting the stream go (stopped, ended, or shutting down). */
  get stopping(): boolean {
    return this.stopAsked || this.closing !== undefined;
  }

  get renditionNames(): string[] {
    return [...this.renditions.keys()];
  }

  /** Records `rendition` too: from its durable consumer where one was left (where stored segments end), else from now. */
  add(rendition: string): void {
    if (this.renditions.has(rendition) || this.closing) return;
    const r = new RenditionRecorder(
      this.deps.nc,
      this.stream,
      rendition,
      this.deps.config,
      { open: (token, first) => this.open(token, rendition, first) },
      this.log.child({ rendition }),
    );
    this.renditions.set(rendition, r);
    void this.startRendition(r);
  }

  private async startRendition(r: RenditionRecorder): Promise<void> {
    try {
      const resuming = await r.exists();
      if (resuming) {
        const open = (await this.owner.list(this.stream)).filter((m) => m.status === 'recording').sort((a, b) => a.token - b.token);
        for (const meta of open) {
          const raw = await this.deps.store.read(recordingPaths.state(meta.id, r.rendition));
          const state = raw && (JSON.parse(raw.toString()) as { ended: boolean; resume?: { token: number; nextCounter: number } });
          if (state && !state.ended && state.resume) {
            r.resumeAt(state.resume);
            break;
          }
        }
      }
      const startSeq = resuming ? undefined : await this.firstKeyframe(r.rendition);
      await r.start(startSeq);
    } catch (err) {
      this.log.warn({ rendition: r.rendition, err: (err as Error).message }, 'cannot start recording the rendition');
      this.renditions.delete(r.rendition);
    }
  }

  /** The sequence of the rendition's last keyframe on the bus: where a new recording starts. */
  private async firstKeyframe(rendition: string): Promise<number | undefined> {
    const { config, nc } = this.deps;
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const shard = ownBusLayout(config).shardOf(this.stream);
    const msg = await jsm.direct.getMessage(shard.jsStream, { last_by_subj: `${shard.prefix}.${this.stream}.${rendition}.${SubjectKind.KEYFRAME}` });
    return msg?.seq;
  }

  /** The recording of publication `token` (one per publication, whichever renditions), and the rendition's files in it. */
  private async open(token: number, rendition: string, first: Frame): Promise<RenditionFiles> {
    let recording = this.recordings.get(token);
    if (!recording) {
      const { store } = this.deps;
      recording = Recording.open(
        store,
        this.stream,
        token,
        first,
        this.log,
        this.owner.recordingOptions((meta) => {
          this.recordings.delete(meta.token);
          this.owner.finished(meta);
        }),
      );
      this.recordings.set(token, recording);
      recording.catch(() => this.recordings.delete(token));
      // Recordings of older publications still open (no end marker came: a takeover, a recorder down past the bus's
      // retention) are complete with what they have.
      for (const meta of await this.owner.list(this.stream)) {
        if (meta.status === 'recording' && meta.token < token && !this.recordings.has(meta.token)) {
          const old = await Recording.load(
            store,
            meta.id,
            this.log,
            this.owner.recordingOptions((m) => this.owner.finished(m)),
          );
          await old?.close();
        }
      }
    }
    return (await recording).rendition(rendition, first);
  }

  /** The id of publication `token`'s recording, once it has begun (within a few seconds: it starts at a keyframe). */
  async recordingOf(token: number): Promise<string | undefined> {
    for (let i = 0; i < 50 && !this.recordings.has(token); i++) await new Promise((r) => setTimeout(r, 100));
    return (await this.recordings.get(token)?.catch(() => undefined))?.meta.id;
  }

  /** An operator asked to stop: every rendition's recording ends now (VOD playlists; the MP4 follows), and the stream is let go. */
  async stopRecording(): Promise<string[]> {
    this.stopAsked = true;
    const ids = await Promise.all([...this.recordings.values()].map((r) => r.then((x) => x.meta.id).catch(() => undefined)));
    await Promise.all([...this.renditions.values()].map((r) => r.finishNow()));
    this.closing ??= this.stop(true);
    return ids.filter((id): id is string => id !== undefined);
  }

  /** Once a second: a stream whose renditions are all idle (ended, stored) and quiet for a while is let go. */
  private async housekeep(): Promise<void> {
    if (this.closing) return;
    const quiet = [...this.renditions.values()].every((r) => r.idle && Date.now() - r.lastMessageAt > LINGER_MS);
    if (!quiet || this.renditions.size === 0) {
      this.quietSince = undefined;
      return;
    }
    this.quietSince ??= Date.now();
    if (Date.now() - this.quietSince < 1000) return;
    this.log.info('stream recorded and over: consumers removed, lease released');
    this.closing = this.stop(true);
    await this.closing;
  }

  private async stop(removeConsumers: boolean): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.renditions.values()].map((r) => (removeConsumers ? r.remove() : r.close())));
    // Recordings completing (their MP4 being made) finish before the lease goes.
    await Promise.all([...this.recordings.values()].map((r) => r.then((x) => x.done).catch(() => {})));
    await this.lease.release().catch(() => {});
    this.onClosed();
  }

  /** Stops here (shutdown, a lost lease): consumers stay, so that a recorder resumes them. */
  close(): Promise<void> {
    this.closing ??= this.stop(false);
    return this.closing;
  }
}
