import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RecordingMeta } from '../../server/core/recording/model.ts';
import { connectNats } from '../../server/core/bus/nats.ts';
import { recordingEventSubject } from '../../recorder/recorder.ts';
import { pino } from 'pino';
import { launchChromium } from '../helpers/browser.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { deliveredSamples, watch } from '../helpers/ws-viewer.ts';

const TOKEN = 'recording-test-admin-token-0123456789';
const key = (stream: string) => `${stream}-recording-key-0123456789`;
const STREAMS = [
  ...['long', 'crash', 'again', 'one', 'two', 'three'].map((name) => ({ name, key: key(name) })),
  { name: 'ondemand', key: key('ondemand'), record: false },
];

interface Probe {
  video: { frames: number; start: number; duration: number; height: number };
  audio: { frames: number; start: number; duration: number };
}

/** ffprobe, decoding every frame of the file. */
function probe(file: string): Probe {
  const out = JSON.parse(
    execFileSync(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,nb_read_frames,start_time,duration,height', '-of', 'json', file],
      {
        encoding: 'utf8',
      },
    ),
  ) as { streams: { codec_type: string; nb_read_frames: string; start_time: string; duration: string; height?: number }[] };
  const s = (type: string) => out.streams.find((x) => x.codec_type === type)!;
  const v = s('video');
  const a = s('audio');
  return {
    video: { frames: Number(v.nb_read_frames), start: Number(v.start_time), duration: Number(v.duration), height: v.height ?? 0 },
    audio: { frames: Number(a.nb_read_frames), start: Number(a.start_time), duration: Number(a.duration) },
  };
}

/** What a WebSocket viewer of the edge received: video and audio samples, counted from its fragments. */
function delivered(viewer: ReturnType<typeof watch>): { video: number; audio: number } {
  return deliveredSamples(viewer.record);
}

/**
 * Recording from the bus, with real parts: nats-server, an origin and edge, OBS-like ffmpeg publishers, a recorder in
 * its own process (killed with -9 in one test), ffprobe decoding every frame, Chromium playing the MP4.
 */
describe('recording (a recorder process on the bus)', { timeout: 300_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let recorder: RelayProcess;
  const dir = mkdtempSync(join(tmpdir(), 'relay-recordings-'));
  const files = mkdtempSync(join(tmpdir(), 'relay-recording-files-'));
  const recorderEnv = {
    NATS_URL: '',
    RELAY_RECORDING_ENABLED: 'true',
    RELAY_RECORDING_DIR: dir,
    RELAY_RECORDING_SEGMENT_SECONDS: '2',
    RELAY_ADMIN_TOKEN: TOKEN,
    RELAY_CLUSTER_NODE_ID: 'recorder-1',
    RELAY_BUS_MAX_AGE_SECONDS: '60',
    RELAY_STREAMS: JSON.stringify(STREAMS),
    RELAY_RECORDING_WEBHOOK_URL: '',
  };
  // The recording webhook: what recorders POST when a recording is complete.
  const hooks: RecordingMeta[] = [];
  const webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as RecordingMeta);
      res.end();
    });
  });
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${recorder.http}/admin/api${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const recordingsOf = async (stream: string) => (await api<{ recordings: RecordingMeta[] }>(`/recordings?stream=${stream}`)).recordings;
  const complete = (stream: string, count = 1) =>
    waitFor(
      `${count} complete recording(s) of ${stream}`,
      async () => {
        const list = await recordingsOf(stream);
        return list.length === count && list.every((r) => r.status === 'complete') ? list : undefined;
      },
      60_000,
    );
  const download = async (meta: RecordingMeta) => {
    const res = await fetch(`${recorder.http}/admin/api/recordings/${meta.id}/file.mp4`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    const file = join(files, `${meta.id}.mp4`);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return file;
  };

  before(async () => {
    nats = await startNats();
    recorderEnv.NATS_URL = nats.url;
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    recorderEnv.RELAY_RECORDING_WEBHOOK_URL = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/recordings`;
    // The edge reads the recordings the recorder writes (rewind): the same folder.
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams: STREAMS, bus: { maxAgeSeconds: 60 }, admin: { token: TOKEN }, recording: { dir } });
    recorder = await startRelay('recorder', recorderEnv);
  });

  after(async () => {
    await recorder?.stop();
    await relay?.node.close();
    await nats?.cleanup();
    webhook.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  });

  test('an 80 s OBS-like stream is recorded, rewound in the watch page (60 s over the WebSocket, 30 s over HLS) and back to live; the MP4 holds every frame the edge delivered, in sync, and plays and seeks in Chromium', async () => {
    const viewer = watch(relay.wsUrl('long'));
    await viewer.opened;
    const publisher = startPublisher({ url: relay.rtmpUrl(key('long')), size: '640x360', bitrate: '800k', seconds: 80 });
    // Rewind, while the stream is live: a viewer drags the bar back, sees the past moving, and clicks Go live.
    const recordedS = async () => {
      const multivariant = await fetch(`${relay.http}/rewind/long/index.m3u8`);
      if (!multivariant.ok) return 0;
      const uri = (await multivariant.text()).split('\n').find((l) => l && !l.startsWith('#'))!;
      const media = await (await fetch(`${relay.http}/rewind/long/${uri}`)).text();
      return media.split('\n').reduce((sum, l) => sum + (l.startsWith('#EXTINF:') ? parseFloat(l.slice(8)) : 0), 0);
    };
    const rewindAndBack = async (query: string, back: number, how: string) => {
      await waitFor(`a recording of more than ${back + 4} s to rewind in`, async () => (await recordedS()) > back + 4, 80_000, 500);
      const browser = await launchChromium();
      try {
        const page = await browser.browser.newPage();
        await page.goto(`${relay.http}/watch/long${query}`);
        type Seen = { state: string; latencyMs?: number; windowS: number; ttffMs?: number; frames: number; live: number };
        const seen = () =>
          page.evaluate((): Seen => {
            const p = (
              window as unknown as {
                relayPlayer: { state: string; latencyMs?: number; framesDecoded(): number; rewind: { windowS: number; ttffMs?: number } };
              }
            ).relayPlayer;
            // Pictures of both elements: over HLS the past plays in the second one, over the WebSocket in the first.
            // (No function declared in here: tsx would wrap it in a helper the page does not have.)
            const frames =
              (document.getElementById('video') as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames +
              (document.getElementById('rewind-video') as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames;
            return {
              state: p.state,
              latencyMs: p.latencyMs,
              windowS: p.rewind.windowS,
              ttffMs: p.rewind.ttffMs,
              frames,
              live: p.framesDecoded(),
            };
          });
        const ready = await waitFor(
          `the live picture, and a rewind bar over ${back} s`,
          async () => {
            const x = await seen();
            return x.state === 'live' && x.live > 30 && x.windowS > back ? x : undefined;
          },
          20_000,
        );
        await page.evaluate((seconds) => {
          const bar = document.getElementById('rewind-seek') as HTMLInputElement;
          bar.value = String(-seconds);
          bar.dispatchEvent(new Event('input'));
          bar.dispatchEvent(new Event('change'));
        }, back);
        const before = ready.frames;
        const past = await waitFor(
          `the picture from ${back} s ago, moving`,
          async () => {
            const x = await seen();
            return x.state === 'rewind' && x.frames > before + 45 && x.latencyMs !== undefined ? x : undefined;
          },
          20_000,
        );
        const behindS = past.latencyMs! / 1000;
        process.stderr.write(
          `# rewound ${back} s ${how}: ${behindS.toFixed(1)} s behind live (by the ingest clock), first picture ${Math.round(past.ttffMs ?? NaN)} ms after the seek\n`,
        );
        assert.ok(behindS > back - 2 && behindS < back + 6, `the picture is ${back} s old: ${behindS} s`);
        assert.ok(past.ttffMs !== undefined && past.ttffMs < 3000, `a picture soon after the seek: ${past.ttffMs} ms`);
        // One click: live again.
        await page.click('#rewind-live');
        const live = await waitFor(
          'the live picture again',
          async () => {
            const x = await seen();
            return x.state === 'live' && x.latencyMs !== undefined && x.latencyMs < 3000 ? x : undefined;
          },
          20_000,
        );
        await waitFor('live pictures rising', async () => (await seen()).live > live.live + 30, 10_000);
      } finally {
        await browser.close();
      }
    };
    await rewindAndBack('?protocol=hls', 30, 'over HLS (hls.js, the page playing LL-HLS)');
    await rewindAndBack('', 60, 'over the WebSocket (the edge replaying the recording)');
    assert.equal(await publisher.exited, 0, publisher.stderr());
    const [meta] = await complete('long');
    const edge = delivered(viewer);
    viewer.close();
    assert.ok(meta && meta.mp4, 'an MP4 was made');
    assert.deepEqual(meta.renditions, ['source']);
    assert.equal(meta.gaps, 0);
    assert.ok(Math.abs(meta.durationS - 80) < 0.1, `80 s recorded: ${meta.durationS}`);
    const file = await download(meta);
    const p = probe(file);
    process.stderr.write(
      `# recorded 80 s: edge delivered ${edge.video} pictures and ${edge.audio} AAC frames; the MP4 has ${p.video.frames} and ${p.audio.frames}\n`,
    );
    assert.equal(p.video.frames, edge.video, 'every picture the edge delivered');
    assert.equal(p.audio.frames, edge.audio, 'every AAC frame the edge delivered');
    assert.equal(p.video.frames, 2400);
    assert.equal(p.video.height, 360);
    assert.ok(Math.abs(p.video.start - p.audio.start) < 1 / 30, `audio and video start together: ${p.video.start} ${p.audio.start}`);
    assert.ok(Math.abs(p.video.duration - p.audio.duration) < 1 / 30 + 0.03, `and end together: ${p.video.duration} ${p.audio.duration}`);

    // The MP4 in Chromium: decoded pictures rise from the start, and again after a seek to 40 s.
    const chromium = await launchChromium();
    try {
      await chromium.browser.setExtraHTTPHeaders({ authorization: `Bearer ${TOKEN}` });
      const page = await chromium.browser.newPage();
      await page.goto(`${recorder.http}/admin/api/recordings/${meta.id}`);
      await page.setContent(`<video id="v" muted autoplay src="${recorder.http}/admin/api/recordings/${meta.id}/file.mp4"></video>`);
      const frames = () => page.evaluate(() => (document.getElementById('v') as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames);
      await waitFor('pictures decoded from the start', async () => (await frames()) > 30, 20_000);
      const before = await frames();
      await page.evaluate(() => {
        (document.getElementById('v') as HTMLVideoElement).currentTime = 40;
      });
      await waitFor(
        'pictures decoded after a seek to 40 s',
        async () => {
          const at = await page.evaluate(() => (document.getElementById('v') as HTMLVideoElement).currentTime);
          return at > 40.5 && (await frames()) > before + 15;
        },
        20_000,
      );
      assert.equal(await page.evaluate(() => (document.getElementById('v') as HTMLVideoElement).duration > 79.9), true);
    } finally {
      await chromium.close();
    }
  });

  test('a recorder killed with -9 mid-stream and started again leaves one complete recording with every frame', async () => {
    const viewer = watch(relay.wsUrl('crash'));
    await viewer.opened;
    const publisher = startPublisher({ url: relay.rtmpUrl(key('crash')), size: '640x360', bitrate: '800k', seconds: 20 });
    // Killed once a few segments are stored, mid-segment.
    const segments = () => {
      const id = readdirSync(dir).find((n) => n.startsWith('crash-'));
      const folder = id && join(dir, id, 'source');
      return folder && existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.m4s')).length : 0;
    };
    await waitFor('three segments stored', () => segments() >= 3, 30_000);
    recorder.child.kill('SIGKILL');
    await recorder.stop();
    const storedAtKill = segments();
    // Down for 4 s while the publisher goes on; the bus keeps what it publishes (60 s here).
    await new Promise((r) => setTimeout(r, 4000));
    recorder = await startRelay('recorder', recorderEnv);
    assert.equal(await publisher.exited, 0, publisher.stderr());
    const [meta] = await complete('crash');
    const edge = delivered(viewer);
    viewer.close();
    assert.ok(meta?.mp4);
    assert.equal(meta.gaps, 0, 'no discontinuity: the recorder went on where it was');
    assert.ok(recorder.output().includes('recording consumer resumed after its last acknowledgement'), 'the restarted recorder resumed the durable consumer');
    const p = probe(await download(meta));
    process.stderr.write(
      `# killed with ${storedAtKill} segments stored: edge delivered ${edge.video}/${edge.audio}; the MP4 has ${p.video.frames}/${p.audio.frames}\n`,
    );
    assert.equal(p.video.frames, edge.video, 'every picture');
    assert.equal(p.audio.frames, edge.audio, 'every AAC frame');
    assert.equal(p.video.frames, 600);
  });

  test('a publisher that stops and starts again makes two recordings, each complete and playable', async () => {
    for (let i = 0; i < 2; i++) {
      const publisher = startPublisher({ url: relay.rtmpUrl(key('again')), size: '320x180', bitrate: '300k', seconds: 5 });
      assert.equal(await publisher.exited, 0, publisher.stderr());
      await complete('again', i + 1);
    }
    const list = await recordingsOf('again');
    assert.equal(list.length, 2);
    assert.notEqual(list[0]!.token, list[1]!.token, 'one recording per publication');
    for (const meta of list) assert.equal(probe(await download(meta)).video.frames, 150);
  });

  test('an operator starts and stops recording a stream configured not to be: one recording of that span, announced on NATS and to the webhook', async () => {
    const nc = await connectNats(nats.url, 'test-events', pino({ level: 'silent' }));
    const events: RecordingMeta[] = [];
    const sub = nc.subscribe(recordingEventSubject('relay', 'ondemand'), { callback: (_err, msg) => void events.push(msg.json<RecordingMeta>()) });
    const control = (action: string) =>
      fetch(`${relay.http}/admin/api/streams/ondemand/recording/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: '{}',
      });
    try {
      const publisher = startPublisher({ url: relay.rtmpUrl(key('ondemand')), size: '320x180', bitrate: '300k', seconds: 16 });
      await waitFor(
        'the stream live',
        async () => ((await (await fetch(`${relay.http}/api/streams/ondemand`)).json()) as { renditions: unknown[] }).renditions.length > 0,
        20_000,
      );
      assert.deepEqual(await recordingsOf('ondemand'), [], 'streams[].record false: not recorded');
      // Asked on the origin and edge node, carried out by the recorder process (over NATS).
      const started = await control('start');
      assert.equal(started.status, 200);
      const start = (await started.json()) as { recording: boolean; recorder: string; id: string };
      assert.equal(start.recording, true);
      assert.equal(start.recorder, 'recorder-1');
      assert.match(start.id, /^ondemand-/);
      await waitFor('two segments recorded', () => existsSync(join(dir, start.id, 'source', '000001.m4s')), 20_000);
      const stopped = await control('stop');
      assert.equal(stopped.status, 200);
      assert.equal(((await stopped.json()) as { id: string }).id, start.id);
      // Stopped: a second stop finds no recorder recording it (the stream is still live).
      const again = await control('stop');
      assert.equal(again.status, 409);
      assert.equal(((await again.json()) as { code: string }).code, 'RECORDING_NOT_ACTIVE');
      const [meta] = await complete('ondemand');
      assert.equal(meta!.id, start.id);
      assert.equal(await publisher.exited, 0, publisher.stderr());
      // The publisher went on after the stop, keyframes and all: no recorder took the stream up again.
      assert.equal((await recordingsOf('ondemand')).length, 1);
      const frames = probe(await download(meta!)).video.frames;
      assert.ok(frames >= 90 && frames < 16 * 30 - 90, `the span between start and stop, not the whole stream: ${frames} pictures`);
      await waitFor('the NATS event and the webhook', () => events.length > 0 && hooks.some((h) => h.id === start.id), 10_000);
      assert.equal(events[0]!.id, start.id);
      assert.equal(events[0]!.status, 'complete');
      assert.deepEqual(hooks.find((h) => h.id === start.id)!.mp4, meta!.mp4);
    } finally {
      sub.unsubscribe();
      await nc.close();
    }
  });

  test('two recorders share the streams, and each stream is recorded once, whole', async () => {
    const second = await startRelay('recorder', { ...recorderEnv, RELAY_CLUSTER_NODE_ID: 'recorder-2' });
    try {
      const names = ['one', 'two', 'three'];
      const publishers = names.map((n) => startPublisher({ url: relay.rtmpUrl(key(n)), size: '320x180', bitrate: '300k', seconds: 6 }));
      for (const p of publishers) assert.equal(await p.exited, 0, p.stderr());
      for (const n of names) {
        const [meta] = await complete(n);
        assert.equal(probe(await download(meta!)).video.frames, 180, `${n}: every picture, once`);
      }
      // Each stream begun once, by one recorder or the other (whichever took its lease first).
      const started = (r: RelayProcess) =>
        r
          .output()
          .split('\n')
          .filter((l) => l.includes('"recording started"') && names.some((n) => l.includes(`"stream":"${n}"`))).length;
      process.stderr.write(`# recordings started: recorder-1 ${started(recorder)}, recorder-2 ${started(second)}\n`);
      assert.equal(started(recorder) + started(second), 3);
    } finally {
      await second.stop();
    }
  });

  test("the recorder's dashboard lists the recordings, plays one seekably, and deletes one", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.browser.newPage();
      page.on('dialog', (d) => void d.accept());
      await page.goto(`${recorder.http}/admin`);
      await page.fill('[data-testid=token]', TOKEN);
      await page.press('[data-testid=token]', 'Enter');
      const [long] = await recordingsOf('long');
      await page.locator(`[data-testid="recording-${long!.id}"]`).waitFor({ timeout: 15_000 });
      const rowText = await page.locator(`[data-testid="recording-${long!.id}"]`).innerText();
      assert.match(rowText, /0:01:20/, `its duration: ${rowText}`);
      assert.match(rowText, /complete/);
      await page.click(`[data-testid="play-${long!.id}"]`);
      const video = () =>
        page.evaluate(() => {
          const v = document.querySelector('[data-testid=recording-video]') as HTMLVideoElement;
          return { frames: v.getVideoPlaybackQuality().totalVideoFrames, duration: v.duration, time: v.currentTime };
        });
      await waitFor('the recording playing', async () => (await video()).frames > 30, 20_000);
      assert.ok(Math.abs((await video()).duration - 80) < 1, 'the whole recording, seekable');
      await page.evaluate(() => {
        (document.querySelector('[data-testid=recording-video]') as HTMLVideoElement).currentTime = 70;
      });
      await waitFor('pictures after a seek to 70 s', async () => (await video()).time > 70.5, 20_000);
      const [doomed] = await recordingsOf('again');
      await page.click(`[data-testid="delete-${doomed!.id}"]`);
      await page.locator(`[data-testid="recording-${doomed!.id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
      const gone = await fetch(`${recorder.http}/admin/api/recordings/${doomed!.id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(gone.status, 404);
      assert.equal(((await gone.json()) as { code: string }).code, 'RECORDING_NOT_FOUND');
      assert.equal(existsSync(join(dir, doomed!.id)), false, 'its files are gone');
    } finally {
      await browser.close();
    }
  });
});
