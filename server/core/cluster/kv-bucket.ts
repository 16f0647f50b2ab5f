import type { Logger } from '../log.ts';
import { type NatsConnection, jetstream, jetstreamManager, Kvm, type KV, nanos } from '../bus/nats.ts';

/** A TTL bucket: the KV, and its live keys listed without a consumer. */
export type TtlBucket = KV & {
  /**
   * The keys with a message now (deleted keys too: their marker is a message),
   * from the stream's subject counts. `kv.keys()` would create an ordered
   * consumer per call, which nats-server keeps for its 5-minute inactivity
   * threshold: polled every second by every node, thousands of them.
   */
  liveKeys(): Promise<string[]>;
};

/**
 * Opens (or creates) a KV bucket whose TTL is part of the design (leases,
 * membership). A bucket left by an earlier configuration gets the configured TTL:
 * changing a setting just works.
 */
export async function openTtlBucket(
  nc: NatsConnection,
  name: string,
  ttlMs: number,
  replicas: number,
  requestTimeoutMs: number,
  log: Logger,
): Promise<TtlBucket> {
  const js = jetstream(nc, { timeout: requestTimeoutMs });
  const kv = await new Kvm(js).create(name, { ttl: ttlMs, history: 1, replicas });
  const jsm = await jetstreamManager(nc, { timeout: requestTimeoutMs });
  const actual = (await kv.status()).ttl;
  if (actual !== ttlMs) {
    await jsm.streams.update(`KV_${name}`, { max_age: nanos(ttlMs), duplicate_window: nanos(Math.min(ttlMs, 120_000)) });
    log.warn({ bucket: name, was: actual, now: ttlMs }, 'KV bucket TTL changed to the configured value');
  }
  const prefix = `$KV.${name}.`;
  return Object.assign(kv, {
    async liveKeys(): Promise<string[]> {
      const info = await jsm.streams.info(`KV_${name}`, { subjects_filter: `${prefix}>` });
      return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    },
  });
}

/**
 * Every live record of a bucket, parsed as JSON: `{ key, revision, value }`.
 * Deleted keys and what is not JSON are skipped; `accept` drops records of the
 * wrong shape. A key that cannot be read fails the whole read (the caller keeps
 * what it had), unless `skipUnreadable`.
 */
export async function readRecords<T>(
  kv: TtlBucket,
  accept: (value: T) => boolean = () => true,
  skipUnreadable = false,
): Promise<{ key: string; revision: number; value: T }[]> {
  const records: { key: string; revision: number; value: T }[] = [];
  for (const key of await kv.liveKeys()) {
    const entry = skipUnreadable ? await kv.get(key).catch(() => null) : await kv.get(key);
    if (!entry || entry.operation !== 'PUT') continue;
    try {
      const value = entry.json<T>();
      if (value && accept(value)) records.push({ key, revision: entry.revision, value });
    } catch {
      // not JSON: not one of ours
    }
  }
  return records;
}

/**
 * A record a node keeps alive in a TTL bucket: written every `intervalMs`, gone
 * a TTL after the last write (the node died) or at once on `stop` (it left).
 */
export class Heartbeat<T extends { id: string }> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly kv: KV,
    private readonly intervalMs: number,
    private readonly record: () => T,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const record = this.record();
    await this.kv.put(record.id, JSON.stringify(record)).catch((err: Error) => this.log.warn({ err: err.message }, `${this.what} heartbeat failed`));
  }

  /** Leaves at once, rather than after the TTL. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.kv.delete(this.record().id).catch(() => {});
  }
}
