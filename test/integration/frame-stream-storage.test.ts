import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureFrameStream, frameStorage } from '../../server/core/bus/frame-stream.ts';
import { loadConfig } from '../../server/core/config/load.ts';
import { RelayError } from '../../server/core/errors.ts';
import { createLogger } from '../../server/core/log.ts';
import { startNats } from '../helpers/nats.ts';

const log = createLogger({ level: 'silent', pretty: false });
const defaults = loadConfig({ env: {} }).bus;

describe('where the frame stream keeps frames (bus.storage)', { timeout: 60_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  const storageOf = async (name: string) => (await (await jetstreamManager(nc)).streams.info(name)).config.storage;

  test('auto is the default, and means file with one replica and memory with more', () => {
    assert.equal(defaults.storage, 'auto');
    assert.equal(frameStorage({ storage: 'auto', replicas: 1 }), StorageType.File);
    assert.equal(frameStorage({ storage: 'auto', replicas: 3 }), StorageType.Memory);
    assert.equal(frameStorage({ storage: 'memory', replicas: 1 }), StorageType.Memory);
    assert.equal(frameStorage({ storage: 'file', replicas: 3 }), StorageType.File);
  });

  test('the default configuration on a single nats-server creates a file-backed frame stream', async () => {
    await ensureFrameStream(nc, { ...defaults, streamName: 'FRAMES_DEFAULT', subjectPrefix: 'd' }, log);
    assert.equal(await storageOf('FRAMES_DEFAULT'), StorageType.File);
  });

  test('auto keeps the storage of a frame stream that exists, and still applies the other settings', async () => {
    const bus = { ...defaults, streamName: 'FRAMES_KEPT', subjectPrefix: 'k' };
    await ensureFrameStream(nc, { ...bus, storage: 'memory' }, log);
    await ensureFrameStream(nc, { ...bus, storage: 'auto', maxAgeSeconds: 12 }, log);
    const info = await (await jetstreamManager(nc)).streams.info('FRAMES_KEPT');
    assert.equal(info.config.storage, StorageType.Memory);
    assert.equal(info.config.max_age, 12_000_000_000);
  });

  test('an explicit storage that differs from the existing stream is refused with CONFIG_INVALID, naming the way out', async () => {
    const bus = { ...defaults, streamName: 'FRAMES_CLASH', subjectPrefix: 'c' };
    await ensureFrameStream(nc, { ...bus, storage: 'memory' }, log);
    await assert.rejects(ensureFrameStream(nc, { ...bus, storage: 'file' }, log), (err: unknown) => {
      assert.ok(err instanceof RelayError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.match(err.message, /FRAMES_CLASH exists with memory storage, not file .*set bus.storage to auto/);
      return true;
    });
    assert.equal(await storageOf('FRAMES_CLASH'), StorageType.Memory);
  });

  test('with shards, one frame stream per shard binding its own subjects, the size cap shared, beside a single stream of before', async () => {
    const jsm = await jetstreamManager(nc);
    // A deployment switching: the single stream of before (prefix "m") is there, and stays.
    await ensureFrameStream(nc, { ...defaults, streamName: 'FRAMES_MIG', subjectPrefix: 'm' }, log);
    await ensureFrameStream(nc, { ...defaults, streamName: 'FRAMES_MIG', subjectPrefix: 'm', shards: 4, maxBytes: 400_000_000 }, log);
    const shards = await Promise.all([0, 1, 2, 3].map((i) => jsm.streams.info(`FRAMES_MIG_${i}`)));
    assert.deepEqual(
      shards.map((s) => s.config.subjects),
      [0, 1, 2, 3].map((i) => [`m_s${i}.>`]),
    );
    for (const s of shards) assert.equal(s.config.max_bytes, 100_000_000);
    assert.deepEqual((await jsm.streams.info('FRAMES_MIG')).config.subjects, ['m.>']);
    // A frame lands in its own shard only.
    const js = jetstream(nc);
    const ack = await js.publish('m_s2.cam.source.k', new Uint8Array([1]));
    assert.equal(ack.stream, 'FRAMES_MIG_2');
  });
});
