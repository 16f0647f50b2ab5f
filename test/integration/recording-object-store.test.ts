import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RecordingMeta } from '../../server/core/recording/model.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

const KEY = 'object-store-key-0123456789';
const TOKEN = 'object-store-admin-token-0123456789';

/**
 * Recordings in a NATS Object Store: a recorder process writes them, and an edge on another node, sharing no folder
 * with it, serves the live stream's rewind and the finished recording from the bucket.
 */
describe('recordings in a NATS Object Store (no shared folder)', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let origin: TestNode;
  let edge: TestNode;
  let recorder: RelayProcess;
  const files = mkdtempSync(join(tmpdir(), 'relay-object-store-'));
  const streams = [{ name: 'cam', key: KEY }];

  before(async () => {
    nats = await startNats();
    origin = await startTestNode(['origin'], nats.url, { streams, bus: { maxAgeSeconds: 60 } });
    edge = await startTestNode(['edge'], nats.url, { streams, bus: { maxAgeSeconds: 60 }, admin: { token: TOKEN }, recording: { storage: 'nats' } });
    recorder = await startRelay('recorder', {
      NATS_URL: nats.url,
      RELAY_RECORDING_ENABLED: 'true',
      RELAY_RECORDING_STORAGE: 'nats',
      RELAY_RECORDING_SEGMENT_SECONDS: '2',
      RELAY_BUS_MAX_AGE_SECONDS: '60',
      // Retention by size: about one recording of this test (segments and MP4) fits, not two.
      RELAY_RECORDING_MAX_TOTAL_BYTES: '1500000',
    });
  });

  after(async () => {
    await recorder?.stop();
    await edge?.node.close();
    await origin?.node.close();
    await nats?.cleanup();
    rmSync(files, { recursive: true, force: true });
  });

  test('the edge rewinds the live stream from the bucket, and lists and serves the finished recording with every frame', async () => {
    const publisher = startPublisher({ url: origin.rtmpUrl(KEY), size: '320x180', bitrate: '300k', seconds: 12 });
    // While live: the edge's rewind playlist, from the recording in the bucket, and a segment of it.
    const media = await waitFor(
      'the rewind playlist with two segments',
      async () => {
        const multivariant = await fetch(`${edge.http}/rewind/cam/index.m3u8`);
        if (!multivariant.ok) return undefined;
        const uri = (await multivariant.text()).split('\n').find((l) => l && !l.startsWith('#'))!;
        const text = await (await fetch(`${edge.http}/rewind/cam/${uri}`)).text();
        return text.split('\n').filter((l) => l.endsWith('.m4s')).length >= 2 ? { uri, text } : undefined;
      },
      20_000,
      250,
    );
    assert.match(media.text, /#EXT-X-PLAYLIST-TYPE:EVENT/);
    const segment = await fetch(`${edge.http}/rewind/cam/${media.uri.replace('index.m3u8', '000000.m4s')}`);
    assert.equal(segment.status, 200);
    assert.equal(segment.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.ok((await segment.arrayBuffer()).byteLength > 10_000);
    assert.equal(await publisher.exited, 0, publisher.stderr());

    // Finished: the edge's admin API lists it and serves its MP4, from the bucket.
    const auth = { authorization: `Bearer ${TOKEN}` };
    const [meta] = await waitFor(
      'the recording complete',
      async () => {
        const list = ((await (await fetch(`${edge.http}/admin/api/recordings?stream=cam`, { headers: auth })).json()) as { recordings: RecordingMeta[] })
          .recordings;
        return list.length === 1 && list[0]!.status === 'complete' && list[0]!.mp4 ? list : undefined;
      },
      30_000,
    );
    const rewind = await fetch(`${edge.http}/rewind/cam/index.m3u8`);
    assert.equal(rewind.status, 404, 'no live recording to rewind in any more');
    assert.equal(((await rewind.json()) as { code: string }).code, 'STREAM_OFFLINE');
    const mp4 = await fetch(`${edge.http}/admin/api/recordings/${meta!.id}/file.mp4`, { headers: auth });
    assert.equal(mp4.status, 200);
    const file = join(files, 'cam.mp4');
    writeFileSync(file, Buffer.from(await mp4.arrayBuffer()));
    const frames = execFileSync(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', file],
      {
        encoding: 'utf8',
      },
    ).trim();
    assert.equal(frames, '360', 'every picture of 12 s at 30 fps');
    const ranged = await fetch(`${edge.http}/admin/api/recordings/${meta!.id}/file.mp4`, { headers: { ...auth, range: 'bytes=1000-1999' } });
    assert.equal(ranged.status, 206);
    assert.equal((await ranged.arrayBuffer()).byteLength, 1000);
  });

  test('retention deletes the oldest complete recording once the recordings take more than recording.maxTotalBytes', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const list = async () =>
      ((await (await fetch(`${edge.http}/admin/api/recordings?stream=cam`, { headers: auth })).json()) as { recordings: RecordingMeta[] }).recordings;
    const [first] = await list();
    assert.ok(first && first.bytes + (first.mp4?.bytes ?? 0) < 1_500_000, `one recording fits: ${first?.bytes} + ${first?.mp4?.bytes}`);
    const publisher = startPublisher({ url: origin.rtmpUrl(KEY), size: '320x180', bitrate: '300k', seconds: 12 });
    assert.equal(await publisher.exited, 0, publisher.stderr());
    const [second] = await waitFor(
      'the second recording complete, and the first deleted',
      async () => {
        const now = await list();
        return now.length === 1 && now[0]!.id !== first.id && now[0]!.status === 'complete' ? now : undefined;
      },
      30_000,
    );
    assert.ok(second!.mp4, 'the newest one is kept, whole');
    const gone = await fetch(`${edge.http}/admin/api/recordings/${first.id}`, { headers: auth });
    assert.equal(gone.status, 404);
    assert.ok(recorder.output().includes('recordings deleted by retention'));
  });
});
