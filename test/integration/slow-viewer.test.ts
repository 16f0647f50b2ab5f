import { WsEgress } from '../../edge/egress/ws/ws-egress.ts';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'slow-viewer-key-0123456789';

describe('a viewer that stops reading', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'slow-viewer-'));
  const clip = join(dir, 'noisy.flv');
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;

  before(async () => {
    // Noise makes a small picture expensive: about 20 Mbit/s, cheap to encode.
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x240:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=sample_rate=48000',
      '-t',
      '4',
      '-vf',
      'noise=alls=80:allf=t',
      '-c:v',
      'libx264',
      '-profile:v',
      'high',
      '-preset',
      'ultrafast',
      '-bf',
      '2',
      '-g',
      '30',
      '-crf',
      '10',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-ar',
      '48000',
      '-f',
      'flv',
      clip,
    ]);
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [{ name: 'fat', key: KEY }],
      edge: { viewerMaxLagMs: 2000 },
      bus: { maxAgeSeconds: 20, maxBytes: 512 * 1024 * 1024 },
    });
  });

  after(async () => {
    await relay?.node.close();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const metric = async (name: string) => {
    const text = await (await fetch(`${relay.http}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  };

  test('skips to keyframes, is disconnected when it stays behind, and the viewer beside it loses nothing', async () => {
    const good = watch(relay.wsUrl('fat'));
    const slow = watch(relay.wsUrl('fat'));
    await Promise.all([good.opened, slow.opened]);
    (slow.ws as unknown as { _socket: Socket })._socket.pause(); // never reads again
    const publisher = startPublisher({ url: relay.rtmpUrl(KEY), file: clip, loops: 3 });
    const hub = await waitFor('the hub', () => relay.node.edge!.findRendition('fat', 'source'));
    await waitFor('the slow viewer to be dropped', () => hub.egress(WsEgress)!.viewers.size === 1, 11_000, 100);
    assert.ok((await metric('relay_edge_viewers_skipped_total')) >= 1, 'the slow viewer skipped to a keyframe first');
    assert.equal(await metric('relay_edge_viewers_disconnected_slow_total'), 1);
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the good viewer to see the end', () => good.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 30_000);
    const seqs = good.record.fragments.map((f) => f.sequence);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `good viewer fragment ${i} follows on`);
    assert.equal(good.record.fragments.filter((f) => f.tracks.some((t) => t.trackId === 1)).length, 3 * 120, 'every video frame of 3 plays of a 4 s clip');
    good.close();
  });
});
