import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer, text } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { connectNats, jetstreamManager, Objm, type NatsConnection } from '../../server/core/bus/nats.ts';
import { RelayError } from '../../server/core/errors.ts';
import { ObjectRecordingStore } from '../../server/core/recording/object-store.ts';
import { DirectoryStore, type RecordingStore } from '../../server/core/recording/store.ts';
import { startNats } from '../helpers/nats.ts';

/**
 * One contract, two backends: a folder on disk, and a NATS Object Store bucket on a real nats-server. Recorders
 * write through it, edges and the admin API read through it, whichever is configured.
 */
describe('the recordings store (a folder, and a NATS Object Store)', { timeout: 60_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  const folder = mkdtempSync(join(tmpdir(), 'relay-store-'));
  const stores: Record<string, RecordingStore> = {};

  before(async () => {
    nats = await startNats();
    nc = await connectNats(nats.url, 'test-store', pino({ level: 'silent' }));
    stores.directory = new DirectoryStore(folder);
    stores.nats = await ObjectRecordingStore.open(nc, 'test_recordings', 1, { checkMs: 200, limitMs: 1000 });
  });

  after(async () => {
    await nc?.close();
    await nats?.cleanup();
    rmSync(folder, { recursive: true, force: true });
  });

  for (const backend of ['directory', 'nats'] as const) {
    test(`${backend}: files written whole, read back, listed by folder, sized, ranged, replaced and removed`, async () => {
      const store = stores[backend]!;
      const segment = Buffer.alloc(300_000);
      for (let i = 0; i < segment.length; i++) segment[i] = i % 251;
      await store.write('cam-20261206-100000-t1/source/000000.m4s', [segment.subarray(0, 1000), segment.subarray(1000)]);
      await store.write('cam-20261206-100000-t1/source/index.m3u8', '#EXTM3U\n');
      await store.write('cam-20261206-100000-t1/recording.json', '{"id":"cam-20261206-100000-t1"}');
      await store.write('other-20261206-100000-t2/recording.json', '{}');

      assert.ok((await store.read('cam-20261206-100000-t1/source/000000.m4s'))!.equals(segment));
      assert.equal(await store.read('cam-20261206-100000-t1/source/missing.m4s'), undefined);
      assert.equal(await store.stat('cam-20261206-100000-t1/source/000000.m4s'), 300_000);
      assert.equal(await store.stat('nothing/here'), undefined);
      assert.deepEqual(await store.list(''), ['cam-20261206-100000-t1', 'other-20261206-100000-t2']);
      assert.deepEqual(await store.list('cam-20261206-100000-t1'), ['recording.json', 'source']);
      assert.deepEqual(await store.list('cam-20261206-100000-t1/source'), ['000000.m4s', 'index.m3u8']);
      assert.equal(await store.size('cam-20261206-100000-t1'), 300_000 + 8 + 31);

      // A range across the object store's chunks (128 KiB), as a player seeking in an MP4 asks.
      const ranged = await buffer(store.open('cam-20261206-100000-t1/source/000000.m4s', { start: 130_000, end: 140_000 }));
      assert.ok(ranged.equals(segment.subarray(130_000, 140_001)), 'bytes 130000-140000');
      assert.equal(await text(store.open('cam-20261206-100000-t1/source/index.m3u8')), '#EXTM3U\n');

      // A playlist rewritten: readers see the new one whole.
      await store.write('cam-20261206-100000-t1/source/index.m3u8', '#EXTM3U\n#EXT-X-ENDLIST\n');
      assert.equal((await store.read('cam-20261206-100000-t1/source/index.m3u8'))!.toString(), '#EXTM3U\n#EXT-X-ENDLIST\n');

      // A folder's files on local disk (what ffmpeg reads), and a local file stored (what it wrote).
      const listed = await store.withLocalFolder('cam-20261206-100000-t1/source', async (local) => {
        const made = join(tmpdir(), `relay-store-test-${backend}.mp4`);
        writeFileSync(made, 'an mp4');
        await store.putFile('cam-20261206-100000-t1/cam.mp4', made);
        return readdirSync(local).sort();
      });
      assert.deepEqual(listed, ['000000.m4s', 'index.m3u8']);
      assert.equal((await store.read('cam-20261206-100000-t1/cam.mp4'))!.toString(), 'an mp4');

      await store.remove('cam-20261206-100000-t1');
      assert.deepEqual(await store.list(''), ['other-20261206-100000-t2']);
      assert.equal(await store.stat('cam-20261206-100000-t1/source/000000.m4s'), undefined);
      await store.remove('other-20261206-100000-t2');
    });
  }

  /** Settles within `ms`, or rejects saying what did not end. */
  const settles = <T>(what: string, promise: Promise<T>, ms = 5000): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      promise.finally(() => clearTimeout(timer)),
      new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms))),
    ]);
  };

  /** Removes an object's chunks but not its metadata: what a delete does first, between a reader's two steps. */
  const purgeChunks = async (name: string): Promise<void> => {
    const info = await (await new Objm(nc).open('test_recordings')).info(name);
    await (await jetstreamManager(nc)).streams.purge('OBJ_test_recordings', { filter: `$O.test_recordings.C.${info!.nuid}` });
  };

  test('nats: a read whose object is removed under it ends as not found; one whose chunks vanish ends as BUS_UNAVAILABLE', async () => {
    const store = stores.nats!;
    const segment = Buffer.alloc(300_000, 7);
    // The chunks go first, then the metadata is marked deleted: the reader's consumer of chunks gets nothing.
    await store.write('gone-20261206-100000-t3/000000.m4s', segment);
    await purgeChunks('gone-20261206-100000-t3/000000.m4s');
    const read = store.read('gone-20261206-100000-t3/000000.m4s');
    const streamed = buffer(store.open('gone-20261206-100000-t3/000000.m4s'));
    await store.remove('gone-20261206-100000-t3');
    assert.equal(await settles('the read', read), undefined);
    await assert.rejects(settles('the streamed read', streamed), (err) => err instanceof RelayError && err.code === 'RECORDING_NOT_FOUND');

    // Chunks lost and the metadata still there: after the limit (1 s here, 30 s by default), a clear error.
    await store.write('lost-20261206-100000-t4/000000.m4s', segment);
    await purgeChunks('lost-20261206-100000-t4/000000.m4s');
    await assert.rejects(
      settles('the read', store.read('lost-20261206-100000-t4/000000.m4s')),
      (err) => err instanceof RelayError && err.code === 'BUS_UNAVAILABLE',
    );
    await store.remove('lost-20261206-100000-t4');
  });

  test('nats: reads and listings racing the removal of what they read all end, with the whole object or without it', async () => {
    const store = stores.nats!;
    const body = Buffer.alloc(200_000, 3);
    const outcomes = { whole: 0, gone: 0 };
    for (let i = 0; i < 60; i++) {
      const dir = `race-20261206-100000-r${i}`;
      await store.write(`${dir}/000000.m4s`, body);
      const removed = store.remove(dir);
      // Started a little after the removal, by up to 3.5 ms: some reads find the object, some do not, some fall in between.
      const read = new Promise((resolve) => setTimeout(resolve, (i % 8) / 2)).then(() => store.read(`${dir}/000000.m4s`));
      const [got] = await settles(`read ${i}`, Promise.all([read, store.list(''), removed]));
      if (got) assert.ok(got.equals(body), 'a read that finds the object gets all of it');
      outcomes[got ? 'whole' : 'gone']++;
    }
    assert.equal(outcomes.whole + outcomes.gone, 60);
  });
});
