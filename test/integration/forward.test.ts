import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { isSyncFlags } from '../helpers/mp4-read.ts';
import { sample, scrape } from '../helpers/prometheus.ts';
import { deliveredSamples, videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'forward-source-key-0123456789';
const MIRROR_KEY = 'forward-mirror-key-0123456789';
const MIRROR_SRT_KEY = 'forward-mirror-srt-key-012345';
const LATE_KEY = 'forward-late-key-0123456789ab';
const SILENT_KEY = 'forward-silent-key-0123456789';
const API_KEY = 'forward-api-key-0123456789abcd';
const TOKEN = 'forward-admin-token-0123456789';

interface ForwardView {
  target: string;
  state: string;
  restarts: number;
  droppedFrames: number;
  error?: string;
}

const delivered = (viewer: ReturnType<typeof watch>) => deliveredSamples(viewer.record);

/** The stream went live for this viewer and then ended (a viewer joining an ended stream is told so first). */
const endedAfterLive = (viewer: ReturnType<typeof watch>) => {
  const states = viewer.record.controls.filter((c) => c.type === 'status').map((c) => c.state);
  const live = states.lastIndexOf('live');
  return live >= 0 && states.indexOf('ended', live) > live;
};

/**
 * Forwarding (restreaming) with real parts: a relay forwards its live stream to another relay's RTMP and SRT
 * listeners, as it would to YouTube, Twitch or a CDN, and to a third that is not up yet. Each relay has its own
 * nats-server: the targets are other platforms, not the same cluster.
 */
describe('a live stream forwarded to other servers over RTMP and SRT (streams[].forward)', { timeout: 120_000 }, () => {
  let natsA: Awaited<ReturnType<typeof startNats>>;
  let natsB: Awaited<ReturnType<typeof startNats>>;
  let source: TestNode;
  let target: TestNode;
  let late: TestNode | undefined;
  let latePort: number;
  /** A target that takes the connection and never reads from it. */
  const silent = net.createServer(() => {});
  const sockets = new Set<net.Socket>();

  before(async () => {
    [natsA, natsB] = await Promise.all([startNats(), startNats()]);
    const targetStreams = [
      { name: 'mirror', key: MIRROR_KEY },
      { name: 'mirror-srt', key: MIRROR_SRT_KEY },
      { name: 'late', key: LATE_KEY },
      { name: 'api', key: API_KEY },
    ];
    target = await startTestNode(['origin', 'edge'], natsB.url, { streams: targetStreams });
    latePort = await freePort();
    silent.on('connection', (socket) => {
      sockets.add(socket.pause());
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const forward = [
      target.rtmpUrl(MIRROR_KEY),
      `srt://127.0.0.1:${target.node.origin!.srt!.port}?streamid=${MIRROR_SRT_KEY}&latency=120000`,
      `rtmp://127.0.0.1:${latePort}/live/${LATE_KEY}`,
      `rtmp://127.0.0.1:${(silent.address() as net.AddressInfo).port}/live/${SILENT_KEY}`,
    ];
    source = await startTestNode(['origin', 'edge'], natsA.url, {
      streams: [{ name: 'main', key: KEY, forward }],
      admin: { token: TOKEN },
      forward: { restartMinMs: 500, restartMaxMs: 2000, maxQueueBytes: 64 << 10, timeoutMs: 4000, bucket: 'relay_forwards' },
    });
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    silent.close();
    await late?.node.close();
    await source?.node.close();
    await target?.node.close();
    await natsA?.cleanup();
    await natsB?.cleanup();
  });

  const forwards = async (): Promise<ForwardView[]> => {
    const res = await fetch(`${source.http}/admin/api/streams/main`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return res.ok ? ((await res.json()) as { forwards: ForwardView[] }).forwards : [];
  };

  test('every picture and AAC frame arrives at both targets; a target that is down, or never reads, is tried again; one that comes up gets the stream from a keyframe', async () => {
    const here = watch(source.wsUrl('main'));
    const mirror = watch(target.wsUrl('mirror'));
    const mirrorSrt = watch(target.wsUrl('mirror-srt'));
    await Promise.all([here.opened, mirror.opened, mirrorSrt.opened]);
    const publisher = startPublisher({ url: source.rtmpUrl(KEY), size: '320x180', bitrate: '400k', seconds: 12 });

    // The third target refuses (nothing listens): retried with backoff, its key never shown.
    const refused = await waitFor(
      'the late target retried, and the other two running',
      async () => {
        const f = await forwards();
        return f.length === 4 && f[0]!.state === 'running' && f[1]!.state === 'running' && f[2]!.restarts >= 2 ? f : undefined;
      },
      20_000,
      200,
    );
    assert.equal(refused[0]!.target, `rtmp://127.0.0.1:${new URL(target.rtmpUrl(MIRROR_KEY)).port}/live/***`);
    assert.match(refused[1]!.target, /^srt:\/\/127\.0\.0\.1:\d+\?streamid=\*\*\*&latency=120000$/);
    assert.match(refused[2]!.error ?? '', /refused|error/i);
    assert.ok(!JSON.stringify(refused).includes(LATE_KEY) && !JSON.stringify(refused).includes(MIRROR_SRT_KEY), JSON.stringify(refused));

    const metrics = await scrape(source.http);
    assert.equal(sample(metrics, 'relay_forward_targets', { state: 'running' }), refused[3]!.state === 'running' ? 3 : 2);
    assert.ok(sample(metrics, 'relay_forward_restarts_total')! >= 2);

    // The fourth never reads: frames wait up to forward.maxQueueBytes, then are dropped (counted) until it is given up on.
    const stuck = await waitFor(
      'the silent target given up on after forward.timeoutMs, its frames dropped meanwhile',
      async () => {
        const f = (await forwards())[3];
        return f && f.restarts >= 1 && f.droppedFrames > 0 ? f : undefined;
      },
      15_000,
      200,
    );
    assert.ok(!JSON.stringify(stuck).includes(SILENT_KEY));
    assert.ok(sample(await scrape(source.http), 'relay_forward_dropped_frames_total')! > 0);

    // It comes up: the next try after its backoff gets the stream, starting at a keyframe.
    late = await startTestNode(['origin', 'edge'], natsB.url, { streams: [{ name: 'late', key: LATE_KEY }], rtmp: { host: '127.0.0.1', port: latePort } });
    const lateViewer = watch(late.wsUrl('late'));
    await lateViewer.opened;
    await waitFor('pictures at the target that came up late', () => delivered(lateViewer).video > 30, 15_000);
    assert.ok(isSyncFlags(videoRuns(lateViewer.record)[0]!.firstSampleFlags), 'it starts at a keyframe');

    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the end of the stream at the source and both targets', () => [here, mirror, mirrorSrt].every(endedAfterLive), 20_000);
    const sent = delivered(here);
    process.stderr.write(
      `# forwarded: source ${JSON.stringify(sent)}; over RTMP ${JSON.stringify(delivered(mirror))}; over SRT ${JSON.stringify(delivered(mirrorSrt))}; late ${JSON.stringify(delivered(lateViewer))}\n`,
    );
    assert.equal(sent.video, 360, 'every picture of 12 s at 30 fps at the source');
    assert.deepEqual(delivered(mirror), sent, 'every picture and AAC frame over RTMP');
    assert.deepEqual(delivered(mirrorSrt), sent, 'every picture and AAC frame over SRT');
    for (const v of [here, mirror, mirrorSrt, lateViewer]) v.close();

    // The publication ended: so did every forward, and its ffmpeg.
    const targetPort = new URL(target.rtmpUrl(MIRROR_KEY)).port;
    await waitFor(
      'no forwarding ffmpeg left',
      () => {
        try {
          execFileSync('pgrep', ['-f', `127.0.0.1:${targetPort}/live/`]);
          return false;
        } catch {
          return true;
        }
      },
      10_000,
    );
    assert.deepEqual(await forwards(), []);
    const logs = source.logs();
    for (const key of [MIRROR_KEY, MIRROR_SRT_KEY, LATE_KEY, SILENT_KEY]) assert.ok(!logs.includes(key), `the target's key ${key} is not logged`);
    assert.match(logs, /"code":"FORWARD_FAILED"/);
  });

  test('an operator adds a forward to a live stream through the admin API, removes it, and one added stays for the next publication', async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${source.http}/admin/api/streams/${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const refused = await admin('POST', 'main/forwards', { url: 'http://example.com/live/key' });
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { code: string }).code, 'FORWARD_URL_INVALID');
    assert.equal((await admin('POST', 'nope/forwards', { url: target.rtmpUrl(API_KEY) })).status, 404);

    const first = watch(target.wsUrl('api'));
    await first.opened;
    const publisher = startPublisher({ url: source.rtmpUrl(KEY), size: '320x180', bitrate: '400k', seconds: 16 });
    await waitFor('the stream live at the source', async () => ((await (await admin('GET', 'main')).json()) as { live: boolean }).live, 10_000);
    const added = await admin('POST', 'main/forwards', { url: target.rtmpUrl(API_KEY) });
    assert.equal(added.status, 201);
    const forward = (await added.json()) as { id: string; target: string; appliedBy: string | null };
    assert.equal(forward.target, `rtmp://127.0.0.1:${new URL(target.rtmpUrl(API_KEY)).port}/live/***`);
    const view = (await (await admin('GET', 'main')).json()) as { origin: string; forwards: ForwardView[] & { id?: string }[] };
    assert.equal(forward.appliedBy, view.origin, 'the origin holding the stream applied it at once');
    await waitFor('pictures at the target added at run time', () => delivered(first).video > 30, 15_000);
    assert.ok(isSyncFlags(videoRuns(first.record)[0]!.firstSampleFlags), 'from a keyframe');

    // Removed while the stream is live: the target's stream ends now, the source's goes on.
    assert.equal((await admin('DELETE', `main/forwards/${forward.id}`)).status, 204);
    await waitFor('the end at the target', () => endedAfterLive(first), 10_000);
    assert.equal(publisher.process.exitCode, null, 'the publisher still publishing');
    await waitFor(
      "the origin's report without it",
      async () => ((await (await admin('GET', 'main')).json()) as { forwards: { id?: string }[] }).forwards.every((f) => f.id === undefined),
      10_000,
      200,
    );

    // Added again: it stays for the next publication, which it forwards whole from its first keyframe.
    const again = (await (await admin('POST', 'main/forwards', { url: target.rtmpUrl(API_KEY) })).json()) as { id: string };
    assert.equal(await publisher.exited, 0, publisher.stderr());
    await waitFor('the first publication over', async () => !((await (await admin('GET', 'main')).json()) as { live: boolean }).live, 10_000);
    // The forward of the first publication's tail ends at the target too, before the next begins.
    await waitFor('the target idle', () => !target.node.origin!.liveStreams().some((l) => l.stream === 'api'), 10_000);
    const here = watch(source.wsUrl('main'));
    const second = watch(target.wsUrl('api'));
    await Promise.all([here.opened, second.opened]);
    const next = startPublisher({ url: source.rtmpUrl(KEY), size: '320x180', bitrate: '400k', seconds: 6 });
    assert.equal(await next.exited, 0, next.stderr());
    await waitFor('the end at the source and the target', () => endedAfterLive(here) && endedAfterLive(second), 15_000);
    assert.equal(delivered(here).video, 180);
    assert.deepEqual(delivered(second), delivered(here), 'every picture and AAC frame of the next publication');
    for (const v of [first, here, second]) v.close();

    const listed = (await (await admin('GET', 'main/forwards')).json()) as { forwards: { id: string; target: string }[] };
    assert.deepEqual(
      listed.forwards.map((f) => f.id),
      [again.id],
    );
    assert.ok(!JSON.stringify(listed).includes(API_KEY));
    assert.equal((await admin('DELETE', `main/forwards/${again.id}`)).status, 204);
    const unknown = await admin('DELETE', `main/forwards/${again.id}`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'FORWARD_UNKNOWN');
  });
});
