import { EventEmitter } from 'node:events';
import { openTtlBucket, readRecords, type TtlBucket } from './kv-bucket.ts';
import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type NatsConnection, isWrongLastSequence } from '../bus/nats.ts';
import { createLeaseMetrics, type LeaseMetrics } from './lease-metrics.ts';
import type { Registry } from 'prom-client';

export interface LeaseHolder {
  origin: string;
  since: number;
  /** The fencing token, written by the first renewal (the create's revision is not known before it). */
  token?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Renewals come often, at a fifth of the TTL: a lease then survives a NATS outage
 * of about 0.7 x TTL (a Raft leader re-election takes about 5 s on 2.9), since
 * the outage may start just before a renewal was due.
 */
const renewInterval = (ttlMs: number) => Math.floor(ttlMs / 5);

/**
 * Stream ownership by lease in NATS KV: one key per live stream. Acquire is
 * create-if-absent, renewal is compare-and-set on the revision, and the revision
 * at acquisition is the fencing token every frame carries. The bucket's TTL
 * expires a lease that is not renewed (nats-server 2.9 has no per-key TTL, and
 * its watchers do not see expiry: nothing here relies on them).
 */
export class StreamLeases {
  /** Leases this process holds now. */
  readonly held = new Set<StreamLease>();
  private readonly metrics: LeaseMetrics | undefined;

  private constructor(
    private readonly kv: TtlBucket,
    private readonly ttlMs: number,
    readonly nodeId: string,
    private readonly log: Logger,
    registry?: Registry,
  ) {
    this.metrics = registry && createLeaseMetrics(registry, () => this.held.size);
  }

  static async open(nc: NatsConnection, cluster: RelayConfig['cluster'], nodeId: string, log: Logger, registry?: Registry): Promise<StreamLeases> {
    // Short request timeouts: a lost reply is retried well inside the lease's TTL.
    const kv = await openTtlBucket(nc, cluster.leaseBucket, cluster.leaseTtlMs, cluster.kvReplicas, Math.min(2000, renewInterval(cluster.leaseTtlMs)), log);
    return new StreamLeases(kv, cluster.leaseTtlMs, nodeId, log, registry);
  }

  /** Every stream lease in the bucket, whoever holds it (the admin API's view). */
  async all(): Promise<Map<string, LeaseHolder & { revision: number }>> {
    const records = await readRecords<LeaseHolder>(this.kv, (h) => typeof h.origin === 'string', true);
    return new Map(records.map((r) => [r.key, { ...r.value, revision: r.revision }]));
  }

  private track(lease: StreamLease, how: 'free' | 'takeover'): StreamLease {
    this.held.add(lease);
    this.metrics?.acquired.inc({ how });
    lease.once('done', (lost) => {
      this.held.delete(lease);
      if (lost) this.metrics?.lost.inc();
    });
    return lease;
  }

  /** The bucket answers (for /readyz). */
  async reachable(): Promise<boolean> {
    return (await this.kv.status()).bucket !== undefined;
  }

  /** Who holds the stream's lease now, if anyone. */
  async holder(stream: string): Promise<(LeaseHolder & { revision: number; ageMs: number }) | undefined> {
    const entry = await this.kv.get(stream);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { ...entry.json<LeaseHolder>(), revision: entry.revision, ageMs: Date.now() - entry.created.getTime() };
  }

  /**
   * Takes the stream's lease. If another origin holds it, watch the holder: a
   * renewal (its revision moves) means it is alive, and this publisher is refused
   * with STREAM_ALREADY_PUBLISHING at once. No renewal means its origin may have
   * died: keep trying until the lease expires (within the TTL), then take it.
   * No clocks of other machines are compared.
   */
  async acquire(stream: string): Promise<StreamLease> {
    const value = JSON.stringify({ origin: this.nodeId, since: Date.now() } satisfies LeaseHolder);
    const giveUpAt = Date.now() + this.ttlMs + 1000;
    let seen: { origin: string; revision: number } | undefined;
    for (;;) {
      const sentAt = performance.now();
      try {
        const revision = await this.kv.create(stream, value);
        if (seen) this.log.info({ stream, previousOwner: seen.origin }, 'took over the lease of an origin that stopped renewing');
        return this.track(new StreamLease(this.kv, stream, value, revision, sentAt, this.ttlMs, this.log, this.metrics), seen ? 'takeover' : 'free');
      } catch (err) {
        if (!isWrongLastSequence(err)) {
          // Unreachable NATS, or a reply lost across a reconnect: retry until the deadline.
          if (Date.now() > giveUpAt) throw new RelayError('BUS_UNAVAILABLE', `cannot take the lease of ${stream}: ${(err as Error).message}`, { cause: err });
          await sleep(200);
          continue;
        }
      }
      const holder = await this.holder(stream).catch(() => undefined);
      if (!holder) {
        await sleep(50); // released or expired in between (or unreadable): try again
        continue;
      }
      if (holder.origin === this.nodeId) {
        // Ours, yet this origin publishes no such stream: a create whose reply was
        // lost. Take it back by compare-and-set; the new revision is still the highest.
        const retakenAt = performance.now();
        const revision = await this.kv.update(stream, value, holder.revision).catch(() => undefined);
        if (revision !== undefined) return this.track(new StreamLease(this.kv, stream, value, revision, retakenAt, this.ttlMs, this.log, this.metrics), 'free');
        continue;
      }
      if ((seen && seen.revision !== holder.revision) || Date.now() > giveUpAt) {
        throw new RelayError('STREAM_ALREADY_PUBLISHING', `stream ${stream} is live on origin ${holder.origin}`);
      }
      seen ??= { origin: holder.origin, revision: holder.revision };
      await sleep(200);
    }
  }
}

/**
 * A held lease. It renews itself and is valid until (send time of the last
 * acknowledged renewal + TTL - margin), measured on this process's monotonic
 * clock: the server stored that write after it was sent, so the key cannot
 * expire before this deadline. Past it, the owner must not publish.
 */
export class StreamLease extends EventEmitter<{ lost: [RelayError]; done: [lost: boolean] }> {
  /** The fencing token: the revision at acquisition, higher than any earlier lease's. */
  readonly token: number;
  private revision: number;
  private validUntil: number;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private state: 'held' | 'lost' | 'released' = 'held';
  /** Wall-clock ms of the last acknowledged renewal's sending (logged when the lease is lost). */
  private lastRenewalSentAt: number;
  private readonly margin: number;

  constructor(
    private readonly kv: TtlBucket,
    readonly stream: string,
    private value: string,
    revision: number,
    sentAt: number,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly metrics?: LeaseMetrics,
  ) {
    super();
    this.token = revision;
    this.revision = revision;
    this.value = JSON.stringify({ ...(JSON.parse(value) as LeaseHolder), token: revision });
    this.margin = Math.max(300, Math.floor(ttlMs * 0.1));
    this.validUntil = sentAt + ttlMs - this.margin;
    this.lastRenewalSentAt = performance.timeOrigin + sentAt;
    this.schedule(renewInterval(ttlMs));
    this.armExpiry();
  }

  /** May frames still be published under this lease? A clock comparison: cheap per frame. */
  get valid(): boolean {
    return this.state === 'held' && performance.now() < this.validUntil;
  }

  private schedule(ms: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), ms);
    this.renewTimer.unref();
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(
      () => {
        if (this.state === 'held' && performance.now() >= this.validUntil) this.lose('renewals did not succeed in time');
        else if (this.state === 'held') this.armExpiry();
      },
      Math.max(0, this.validUntil - performance.now()),
    );
    this.expiryTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.state !== 'held') return;
    const sentAt = performance.now();
    const every = renewInterval(this.ttlMs);
    try {
      const revision = await this.kv.update(this.stream, this.value, this.revision, every);
      if (this.state !== 'held') return;
      this.metrics?.renewalLatency.observe((performance.now() - sentAt) / 1000);
      this.revision = revision;
      this.validUntil = sentAt + this.ttlMs - this.margin;
      this.lastRenewalSentAt = performance.timeOrigin + sentAt;
      this.armExpiry();
      this.schedule(every);
    } catch (err) {
      if (this.state !== 'held') return;
      if (isWrongLastSequence(err)) {
        this.lose('another origin holds the lease now');
        return;
      }
      this.log.warn(
        { stream: this.stream, err: (err as Error).message, msLeft: Math.round(this.validUntil - performance.now()) },
        'lease renewal failed; retrying',
      );
      this.schedule(250);
    }
  }

  private lose(why: string): void {
    if (this.state !== 'held') return;
    this.state = 'lost';
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    const error = new RelayError('LEASE_LOST', why);
    this.log.warn(
      { code: error.code, stream: this.stream, why, lastRenewalSentAt: new Date(this.lastRenewalSentAt).toISOString(), stoppedAt: new Date().toISOString() },
      'stream lease lost; stopped publishing',
    );
    this.emit('lost', error);
    this.emit('done', true);
  }

  /** Gives the stream up (the publisher left). Safe to call twice, and after a loss. */
  async release(): Promise<void> {
    const held = this.state === 'held';
    this.state = 'released';
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    if (!held) return;
    this.emit('done', false);
    await this.kv.delete(this.stream, { previousSeq: this.revision }).catch(() => {
      // already expired or taken: nothing to give up
    });
  }
}
