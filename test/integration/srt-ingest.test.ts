import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { startLossyUdp } from '../helpers/lossy-udp.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { srtHandshake } from '../helpers/srt-caller.ts';
import { videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'srt-ingest-key-0123456789';
const SECURE_KEY = 'srt-secure-key-0123456789';
const TAKEOVER_KEY = 'srt-takeover-key-0123456789';
const TOOL_KEY = 'srt-tool-key-0123456789';
const PASSPHRASE = 'relay-srt-passphrase';
const ADMIN = 'srt-admin-token-0123456789abcdef';
const FPS = 30;
const FRAME_TICKS = 90_000 / FPS;

/** An OBS-like encoder (H.264 High with B-frames, AAC-LC 48 kHz) writing MPEG-TS to `url` for `seconds`, as ffmpeg's libsrt caller. */
const ffmpegSrt = (url: string, seconds: number) => startPublisher({ url, seconds, fps: FPS });

function run(command: string, args: string[], shell = false) {
  const child = shell ? spawn('sh', ['-c', command]) : spawn(command, args);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', () => {});
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** The viewer got every frame: one GOP start, then every frame one frame time after the last. */
function assertEveryFrame(frames: ReturnType<typeof videoRuns>, expected: number, what: string): void {
  assert.equal(frames.length, expected, `${what}: ${frames.length} of ${expected} frames`);
  assert.ok(isSyncFlags(frames[0]!.firstSampleFlags), `${what}: starts at a keyframe`);
  for (let i = 1; i < frames.length; i++) {
    assert.equal(frames[i]!.baseDecodeTime - frames[i - 1]!.baseDecodeTime, FRAME_TICKS, `${what}: frame ${i} follows frame ${i - 1}`);
  }
}

/** The "SRT publisher left" log line of a stream (its receiver's figures). */
function leftLine(node: TestNode, stream: string): Record<string, number | string> | undefined {
  const line = node
    .logs()
    .split('\n')
    .filter((l) => l.includes('"SRT publisher left"') && l.includes(`"stream":"${stream}"`))
    .at(-1);
  return line ? (JSON.parse(line) as Record<string, number | string>) : undefined;
}

async function refusals(node: TestNode): Promise<string> {
  return (await (await fetch(`${node.http}/metrics`)).text())
    .split('\n')
    .filter((l) => l.startsWith('relay_ingest_publisher_refusals_total{protocol="srt"'))
    .join('\n');
}

describe('SRT ingest with real callers (ffmpeg libsrt, srt-live-transmit) and a real nats-server', { timeout: 240_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let secure: TestNode;
  const srtUrl = (node: TestNode, key: string, extra = '') =>
    `srt://127.0.0.1:${node.node.origin!.srt!.port}?streamid=${key}&latency=${120_000}&linger=2${extra}`;

  before(async () => {
    nats = await startNats();
    const streams = [
      { name: 'cam', key: KEY },
      { name: 'secure', key: SECURE_KEY },
      { name: 'takeover', key: TAKEOVER_KEY },
      { name: 'tool', key: TOOL_KEY },
      { name: 'lossy', key: 'srt-lossy-key-0123456789' },
      { name: 'hevc', key: 'srt-hevc-key-0123456789' },
    ];
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams, srt: { latencyMs: 120 }, admin: { token: ADMIN } });
    // A second origin on the same bus: encrypted, one caller per address.
    secure = await startTestNode(['origin'], nats.url, { streams, srt: { passphrase: PASSPHRASE, maxConnectionsPerAddress: 1 } });
  });
  after(async () => {
    await secure?.node.close();
    await relay?.node.close();
    await nats?.cleanup();
  });

  test('an OBS-like ffmpeg over srt://…?streamid=<key> reaches a viewer with every frame, B-frames kept, shown as an SRT publisher', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    await viewer.opened;
    const publisher = ffmpegSrt(srtUrl(relay, KEY), 4);
    await waitFor('the publisher on the origin', () => relay.node.origin!.liveStreams().find((l) => l.stream === 'cam'), 10_000);
    assert.equal(relay.node.origin!.liveStreams().find((l) => l.stream === 'cam')!.protocol, 'srt');
    // The dashboard's view: the stream's protocol, and the origin's SRT address.
    const cluster = await waitFor(
      'the stream in the admin view',
      async () => {
        const c = (await (await fetch(`${relay.http}/admin/api/cluster`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
          streams: { name: string; live: boolean; protocol: string }[];
          nodes: { origin?: { srt?: string } }[];
        };
        return c.streams.some((x) => x.name === 'cam' && x.protocol === 'srt') ? c : undefined;
      },
      10_000,
      200,
    );
    const port = relay.node.origin!.srt!.port;
    assert.ok(
      cluster.nodes.some((n) => n.origin?.srt === `srt://127.0.0.1:${port}`),
      JSON.stringify(cluster.nodes.map((n) => n.origin)),
    );
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    assertEveryFrame(videoRuns(viewer.record), 4 * FPS, 'cam');
    const left = leftLine(relay, 'cam')!;
    assert.equal(left.why, 'the caller closed the connection');
    assert.equal(left.dropped, 0);
    viewer.close();
  });

  test('HEVC (libx265, with B-frames) over SRT is listed as hvc1 and reaches the viewer, every frame', async () => {
    const viewer = watch(relay.wsUrl('hevc'));
    await viewer.opened;
    const args = [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=320x180:rate=${FPS}`,
      '-f',
      'lavfi',
      '-i',
      'sine=sample_rate=48000',
    ];
    args.push(
      '-t',
      '3',
      '-c:v',
      'libx265',
      '-preset',
      'ultrafast',
      '-x265-params',
      `bframes=2:keyint=${FPS}:min-keyint=${FPS}:log-level=error`,
      '-pix_fmt',
      'yuv420p',
    );
    args.push('-c:a', 'aac', '-ar', '48000', '-f', 'mpegts', srtUrl(relay, 'srt-hevc-key-0123456789'));
    const publisher = run('ffmpeg', args);
    const info = await waitFor(
      'the HEVC rendition listed',
      async () => {
        const r = (await (await fetch(`${relay.http}/api/streams/hevc`)).json()) as { renditions: { codecs: string }[] };
        return r.renditions.length > 0 ? r : undefined;
      },
      15_000,
    );
    assert.match(info.renditions[0]!.codecs, /^hvc1\.1\.6\.L\d+\.[0-9A-F]+,mp4a\.40\.2$/);
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    assertEveryFrame(videoRuns(viewer.record), 3 * FPS, 'hevc');
    viewer.close();
  });

  test("refusals carry SRT's rejection codes and are counted by the relay's stable code: wrong key 1403, bad stream id 1400, playback mode 1405", async () => {
    const port = relay.node.origin!.srt!.port;
    assert.deepEqual(await srtHandshake(port, 'not-a-key-of-this-relay'), { accepted: false, reason: 1403 });
    assert.deepEqual(await srtHandshake(port, '#!::m=publish,u=nobody'), { accepted: false, reason: 1400 });
    assert.deepEqual(await srtHandshake(port, `#!::r=${KEY},m=request`), { accepted: false, reason: 1405 });
    assert.deepEqual(await srtHandshake(port, `#!::r=tool,s=${KEY},m=publish`), { accepted: false, reason: 1403 }, 'a key for another stream');
    const accepted = await srtHandshake(port, `#!::r=cam,s=${KEY},m=publish`);
    assert.ok(accepted.accepted && accepted.latencyMs === 120, JSON.stringify(accepted));
    const metrics = await refusals(relay);
    for (const code of ['STREAM_KEY_INVALID', 'SRT_STREAMID_INVALID', 'SRT_MODE_UNSUPPORTED']) assert.match(metrics, new RegExp(`reason="${code}"`), metrics);
  });

  test('with a passphrase: ffmpeg with it (AES-256) plays; with another one, or none, it is refused (BADSECRET 10, UNSECURE 11); one caller per address', async () => {
    const viewer = watch(relay.wsUrl('secure'));
    await viewer.opened;
    const publisher = ffmpegSrt(srtUrl(secure, SECURE_KEY, `&passphrase=${PASSPHRASE}&pbkeylen=32`), 4);
    await waitFor('the encrypted publisher', () => secure.node.origin!.liveStreams().find((l) => l.stream === 'secure'), 10_000);
    const port = secure.node.origin!.srt!.port;
    // While it publishes, a second caller from the same address is over the limit (1 per address): 1402.
    assert.deepEqual(await srtHandshake(port, SECURE_KEY, { passphrase: PASSPHRASE }), { accepted: false, reason: 1402 });
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    assertEveryFrame(videoRuns(viewer.record), 4 * FPS, 'secure');
    viewer.close();
    await waitFor('the caller gone', () => !secure.node.origin!.liveStreams().some((l) => l.stream === 'secure'), 10_000);
    assert.deepEqual(await srtHandshake(port, SECURE_KEY, { passphrase: 'not-the-passphrase' }), { accepted: false, reason: 10 });
    assert.deepEqual(await srtHandshake(port, SECURE_KEY), { accepted: false, reason: 11 });
    const wrong = ffmpegSrt(srtUrl(secure, SECURE_KEY, '&passphrase=not-the-passphrase'), 2);
    assert.notEqual(await wrong.exited, 0);
    assert.match(wrong.stderr(), /Incorrect passphrase|failed/);
    const metrics = await refusals(secure);
    for (const code of ['TOO_MANY_CONNECTIONS', 'SRT_PASSPHRASE_INVALID', 'SRT_ENCRYPTION_MISMATCH'])
      assert.match(metrics, new RegExp(`reason="${code}"`), metrics);
  });

  test('with 5% of packets lost each way, the viewer misses no frame and SRT delivers each packet on time (within its latency)', async (t) => {
    const lossy = await startLossyUdp({ host: '127.0.0.1', port: relay.node.origin!.srt!.port }, 0.05, 20261206);
    try {
      const viewer = watch(relay.wsUrl('lossy'));
      await viewer.opened;
      const url = `srt://127.0.0.1:${lossy.port}?streamid=srt-lossy-key-0123456789&latency=${250_000}&linger=3`;
      const publisher = ffmpegSrt(url, 6);
      assert.equal(await publisher.exited, 0, publisher.stderr());
      await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 15_000);
      const left = leftLine(relay, 'lossy')!;
      t.diagnostic(`receiver: ${JSON.stringify(left)}; the lossy relay dropped ${lossy.stats.dropped} of ${lossy.stats.dropped + lossy.stats.forwarded}`);
      assert.ok(Number(left.lost) > 0 && Number(left.retransmitted) > 0, `packets were lost and sent again: ${JSON.stringify(left)}`);
      assert.equal(left.dropped, 0, 'none given up');
      assert.ok(Number(left.maxLateMs) <= 50, `delivered at most ${left.maxLateMs} ms after the 250 ms latency`);
      assertEveryFrame(videoRuns(viewer.record), 6 * FPS, 'lossy');
      assert.ok(lossy.stats.dropped > 20, `the relay in between dropped ${lossy.stats.dropped} packets`);
      viewer.close();
    } finally {
      await lossy.close();
    }
  });

  test('srt-live-transmit, a second independent caller, publishes MPEG-TS from its standard input', async () => {
    const viewer = watch(relay.wsUrl('tool'));
    await viewer.opened;
    const port = relay.node.origin!.srt!.port;
    const encode = `ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=${FPS} -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 -c:v libx264 -profile:v high -preset veryfast -bf 2 -g ${FPS * 2} -pix_fmt yuv420p -c:a aac -ar 48000 -f mpegts -`;
    const tool = run(`${encode} | srt-live-transmit -a:no -q file://con "srt://127.0.0.1:${port}?streamid=${TOOL_KEY}&latency=120"`, [], true);
    await waitFor('frames from srt-live-transmit', () => videoRuns(viewer.record).length >= 2 * FPS, 15_000);
    assert.ok(relay.node.origin!.liveStreams().some((l) => l.stream === 'tool' && l.protocol === 'srt'));
    await tool.exited;
    const frames = videoRuns(viewer.record);
    for (let i = 1; i < frames.length; i++) assert.equal(frames[i]!.baseDecodeTime - frames[i - 1]!.baseDecodeTime, FRAME_TICKS, `frame ${i}`);
    viewer.close();
  });

  test('a second caller with the same key takes the stream over; the first is let go with PUBLISHER_REPLACED and the viewer goes on', async () => {
    const viewer = watch(relay.wsUrl('takeover'));
    await viewer.opened;
    const first = ffmpegSrt(srtUrl(relay, TAKEOVER_KEY), 20);
    await waitFor('frames of the first', () => videoRuns(viewer.record).length > FPS, 15_000);
    const second = ffmpegSrt(srtUrl(relay, TAKEOVER_KEY), 3);
    await waitFor('the first let go', () => leftLine(relay, 'takeover')?.code === 'PUBLISHER_REPLACED', 10_000);
    const before = videoRuns(viewer.record).length;
    assert.equal(await second.exited, 0, second.stderr());
    await waitFor('the end at the viewer', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    assert.ok(videoRuns(viewer.record).length >= before + 2 * FPS, 'the second publication reached the viewer');
    assert.ok(!viewer.record.closed, 'the viewer stayed connected');
    first.process.kill('SIGKILL');
    viewer.close();
  });
});
