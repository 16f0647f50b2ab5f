import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type JetStreamManager, type NatsConnection, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type StreamConfig, nanos } from './nats.ts';
import { type BusLayout, type BusShard, busLayout } from './shards.ts';

/**
 * The storage `bus.storage` asks for, given whether the frame stream exists already.
 * `auto`: an existing stream keeps its storage (switching means deleting the stream,
 * which viewers would see); a new one is file-backed with one replica (no other copy
 * survives a nats-server restart) and in memory when replicated (the replicas keep the
 * frames through one node's restart, at a lower p99 than the file store).
 */
export function frameStorage(bus: Pick<RelayConfig['bus'], 'storage' | 'replicas'>, existing?: StorageType): StorageType {
  if (bus.storage === 'file') return StorageType.File;
  if (bus.storage === 'memory') return StorageType.Memory;
  if (existing) return existing;
  return bus.replicas > 1 ? StorageType.Memory : StorageType.File;
}

/**
 * Creates or updates the JetStream streams that hold the frames, one per shard (see BusLayout):
 * memory or file storage (see frameStorage), a retention of a few GOPs, direct gets allowed (late
 * consumers look up the last keyframe with them). The shards are made side by side.
 */
export async function ensureFrameStream(nc: NatsConnection, bus: RelayConfig['bus'], log: Logger, layout: BusLayout = busLayout(bus)): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const maxBytes = Math.ceil(bus.maxBytes / layout.shards.length);
  await Promise.all(layout.shards.map((shard) => ensureShard(jsm, bus, shard, maxBytes, layout.region, log)));
}

async function ensureShard(jsm: JetStreamManager, bus: RelayConfig['bus'], shard: BusShard, maxBytes: number, region: string, log: Logger): Promise<void> {
  const maxAge = nanos(bus.maxAgeSeconds * 1000);
  const name = shard.jsStream;
  const wanted: Partial<StreamConfig> & { name: string } = {
    name,
    subjects: [shard.wildcard],
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: maxAge,
    max_bytes: maxBytes,
    num_replicas: bus.replicas,
    allow_direct: true,
    duplicate_window: Math.min(maxAge, nanos(10_000)),
    // A region's frames stay in its own NATS cluster (named as the region).
    ...(region && { placement: { cluster: region, tags: [] } }),
  };
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(name)).config;
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message))
      throw new RelayError('BUS_UNAVAILABLE', `cannot read stream ${name}: ${(err as Error).message}`, { cause: err });
  }
  const storage = frameStorage(bus, existing?.storage);
  try {
    if (!existing) {
      await jsm.streams.add({ ...wanted, storage });
      log.info({ stream: name, storage, maxAgeSeconds: bus.maxAgeSeconds, replicas: bus.replicas }, 'frame stream created');
      return;
    }
    if (existing.storage !== storage) {
      throw new RelayError(
        'CONFIG_INVALID',
        `JetStream stream ${name} exists with ${existing.storage} storage, not ${storage} (bus.storage ${bus.storage}); delete it, pick another bus.streamName, or set bus.storage to auto`,
      );
    }
    await jsm.streams.update(name, wanted);
    log.debug({ stream: name }, 'frame stream updated');
  } catch (err) {
    if (err instanceof RelayError) throw err;
    throw new RelayError('BUS_UNAVAILABLE', `cannot create or update stream ${name}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Returns a trigger that (re)creates the frame streams, at most once per
 * `minIntervalMs` and one attempt at a time: a memory stream does not survive a
 * nats-server restart, so publish failures and reconnects call it.
 */
export function frameStreamKeeper(
  nc: NatsConnection,
  bus: RelayConfig['bus'],
  log: Logger,
  layout: BusLayout = busLayout(bus),
  minIntervalMs = 1000,
): () => void {
  let running = false;
  let lastRun = 0;
  return () => {
    const now = Date.now();
    if (running || now - lastRun < minIntervalMs || nc.isClosed()) return;
    running = true;
    lastRun = now;
    ensureFrameStream(nc, bus, log, layout)
      .catch((err: Error) => log.warn({ code: 'BUS_UNAVAILABLE', err: err.message }, 'cannot (re)create the frame stream yet'))
      .finally(() => {
        running = false;
      });
  };
}
