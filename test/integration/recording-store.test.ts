import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer, text } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { connectNats, type NatsConnection } from '../../server/core/bus/nats.ts';
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
    stores.nats = await ObjectRecordingStore.open(nc, 'test_recordings', 1);
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
});
