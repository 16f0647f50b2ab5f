import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { nanos } from '@nats-io/nats-core';
import type { Logger } from '../log.ts';
import type { NatsConnection } from '../bus/nats-connection.ts';

/**
 * Opens (or creates) a KV bucket whose TTL is part of the design (leases,
 * membership). A bucket left by an earlier configuration gets the configured TTL:
 * changing a setting just works.
 */
export async function openTtlBucket(nc: NatsConnection, name: string, ttlMs: number, replicas: number, requestTimeoutMs: number, log: Logger): Promise<KV> {
  const js = jetstream(nc, { timeout: requestTimeoutMs });
  const kv = await new Kvm(js).create(name, { ttl: ttlMs, history: 1, replicas });
  const actual = (await kv.status()).ttl;
  if (actual !== ttlMs) {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.update(`KV_${name}`, { max_age: nanos(ttlMs), duplicate_window: nanos(Math.min(ttlMs, 120_000)) });
    log.warn({ bucket: name, was: actual, now: ttlMs }, 'KV bucket TTL changed to the configured value');
  }
  return kv;
}
