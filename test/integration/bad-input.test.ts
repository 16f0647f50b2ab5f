import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { closedWithin, rtmpHandshake } from '../helpers/raw-rtmp.ts';
import { watch } from '../helpers/ws-viewer.ts';

const GOOD_KEY = 'good-stream-key-0123456789';
const OTHER_KEY = 'other-stream-key-987654321';

describe('bad input is refused with a stable code while the good stream keeps playing', { timeout: 180_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let publisher: Publisher;
  let good: ReturnType<typeof watch>;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [
        { name: 'good', key: GOOD_KEY },
        { name: 'other', key: OTHER_KEY },
      ],
      rtmp: { host: '127.0.0.1', port: 0, handshakeTimeoutMs: 1500, maxMessageBytes: 1 << 20 },
      // A second publisher is refused only without takeover (test/cluster/takeover.test.ts has it on).
      ingest: { takeover: false },
    });
    publisher = startPublisher({ url: relay.rtmpUrl(GOOD_KEY) });
    good = watch(relay.wsUrl('good'));
    await waitFor('the good stream to play', () => good.record.fragments.length > 30, 20_000);
  });

  after(async () => {
    good?.close();
    await publisher?.stop();
    await relay?.node.close();
    await nats?.cleanup();
  });

  const refusedPublish = async (url: string) => {
    const p = startPublisher({ url, seconds: 5 });
    const code = await p.exited;
    return { code, stderr: p.stderr() };
  };

  test('a wrong stream key is refused at connect time with STREAM_KEY_INVALID, and no key reaches the log', async () => {
    const wrong = 'not-the-right-key-000000000';
    const { code, stderr } = await refusedPublish(relay.rtmpUrl(wrong));
    assert.notEqual(code, 0);
    assert.match(stderr, /STREAM_KEY_INVALID/);
    assert.match(relay.logs(), /"code":"STREAM_KEY_INVALID"/);
    assert.equal(relay.logs().includes(wrong), false, 'the wrong key is not logged');
    assert.equal(relay.logs().includes(GOOD_KEY), false, 'the good key is not logged');
    assert.equal(relay.logs().includes(OTHER_KEY), false);
  });

  test('an unknown RTMP application is refused with RTMP_APP_UNKNOWN', async () => {
    const { code, stderr } = await refusedPublish(relay.rtmpUrl(OTHER_KEY, 'other-app'));
    assert.notEqual(code, 0);
    assert.match(stderr, /RTMP_APP_UNKNOWN/);
  });

  test('publish names with dots, wildcards or spaces are refused and never reach NATS', async () => {
    for (const name of ['a.b', '*', '>', 'good.>', 'a%20b']) {
      const { code, stderr } = await refusedPublish(relay.rtmpUrl(name));
      assert.notEqual(code, 0, name);
      assert.match(stderr, /STREAM_KEY_INVALID/, name);
    }
  });

  test('with takeover off, a second publisher of a live stream is refused with STREAM_ALREADY_PUBLISHING while the first is live', async () => {
    const { code, stderr } = await refusedPublish(relay.rtmpUrl(GOOD_KEY));
    assert.notEqual(code, 0);
    assert.match(stderr, /STREAM_ALREADY_PUBLISHING/);
    assert.equal(publisher.process.exitCode, null, 'the first publisher is still publishing');
  });

  test('random bytes on the RTMP port close that connection only', async () => {
    for (let i = 0; i < 5; i++) {
      const socket = net.connect(relay.node.origin!.rtmp.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(randomBytes(8192));
      assert.equal(await closedWithin(socket, 3000), true);
    }
  });

  test('a half-finished handshake is closed after the handshake timeout', async () => {
    const socket = net.connect(relay.node.origin!.rtmp.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(Buffer.concat([Buffer.from([3]), randomBytes(700)]));
    const started = Date.now();
    assert.equal(await closedWithin(socket, 5000), true);
    assert.ok(Date.now() - started >= 1000, 'not before the timeout');
    assert.match(relay.logs(), /"code":"RTMP_HANDSHAKE_TIMEOUT"/);
  });

  test('an RTMP message larger than the limit before any publish (64 KiB) closes the connection with RTMP_PROTOCOL_ERROR', async () => {
    const socket = await rtmpHandshake(relay.node.origin!.rtmp.port);
    // fmt 0, chunk stream 4, timestamp 0, length 16 MiB - 1, type 9 (video), stream 1
    socket.write(Buffer.from([0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0, 0x17, 0x01]));
    assert.equal(await closedWithin(socket, 3000), true);
    assert.match(relay.logs(), /RTMP message of 16777215 bytes exceeds 65536 before publishing/);
  });

  test('a chunk size of zero is a protocol error, not a hang', async () => {
    const socket = await rtmpHandshake(relay.node.origin!.rtmp.port);
    // Set Chunk Size (type 1) to 0 on chunk stream 2.
    socket.write(Buffer.from([0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(await closedWithin(socket, 3000), true);
  });

  test('a WebSocket to an unknown stream gets STREAM_UNKNOWN and close code 4404', async () => {
    const viewer = watch(relay.wsUrl('nobody-here'));
    await waitFor('the close', () => viewer.record.closed, 5000);
    assert.deepEqual(viewer.record.closed, { code: 4404, reason: 'STREAM_UNKNOWN' });
    assert.equal(viewer.record.controls[0]?.code, 'STREAM_UNKNOWN');
  });

  test('a WebSocket or watch page with a bad stream name gets STREAM_NAME_INVALID', async () => {
    for (const name of ['a.b', '%2A', '%3E', 'a%20b', 'x'.repeat(65), '%E2%82%AC', '%']) {
      const viewer = watch(relay.wsUrl(name));
      await waitFor(`the close for ${name}`, () => viewer.record.closed, 5000);
      assert.deepEqual(viewer.record.closed, { code: 4400, reason: 'STREAM_NAME_INVALID' }, name);
    }
    const page = await fetch(`${relay.http}/watch/a.b`);
    assert.equal(page.status, 400);
    assert.equal(((await page.json()) as { code: string }).code, 'STREAM_NAME_INVALID');
    assert.equal((await fetch(`${relay.http}/watch/nobody`)).status, 404);
  });

  test('the good stream played on through all of it, with no frame missing', async () => {
    const seqs = good.record.fragments.map((f) => f.sequence);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `fragment ${i} follows on`);
    const times = good.record.fragments.map((f) => f.at);
    const longestPause = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    assert.ok(longestPause < 1000, `longest pause between fragments ${longestPause} ms`);
    assert.equal(good.record.closed, undefined);
    assert.ok((await fetch(`${relay.http}/healthz`)).ok);
  });
});
