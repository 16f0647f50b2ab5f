import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import HLS from 'hls-parser';
import type { Page } from 'playwright-core';
import { signPlaybackToken } from '../../server/core/auth/signatures.ts';
import { launchChromium } from '../helpers/browser.ts';
import { waitFor } from '../helpers/ports.ts';
import { sample, scrape } from '../helpers/prometheus.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';

// A playlist hls-parser finds invalid fails the test (by default it only prints why).
HLS.setOptions({ strictMode: true });

const KEY = 'hls-stream-key-0123456789';
const LIFE_KEY = 'hls-life-key-0123456789';
const DVR_KEY = 'hls-dvr-key-0123456789';
const PLAY_SECRET = 'hls-playback-secret-Qm3v8ZtR4wL2nK7pS6yX';
const token = (stream: string) => signPlaybackToken(PLAY_SECRET, stream, Math.floor(Date.now() / 1000) + 600);

/**
 * ffmpeg as an independent HLS client: reads the multivariant playlist for `seconds` and
 * decodes every rendition (`-map 0`), one CRC line per decoded frame, counted by stream.
 */
function ffmpegClient(url: string, seconds: number): Promise<{ status: number | null; stderr: string; frames: Map<number, number> }> {
  return new Promise((resolve) => {
    const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'warning', '-i', url, '-map', '0', '-t', String(seconds), '-f', 'framecrc', '-'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const frames = new Map<number, number>();
    const lastDts = new Map<number, number>();
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^\s*(\d+),\s*(-?\d+),/.exec(line);
      if (!m) return;
      const stream = Number(m[1]);
      const dts = Number(m[2]);
      frames.set(stream, (frames.get(stream) ?? 0) + 1);
      const before = lastDts.get(stream);
      if (before !== undefined && stream % 2 === 0 && dts - before !== 1) stderr += `stream ${stream}: dts ${before} -> ${dts}\n`;
      lastDts.set(stream, dts);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, frames });
    });
  });
}

describe('LL-HLS from the edge (real relay, real ffmpeg, hls.js in Chromium)', { timeout: 240_000 }, () => {
  let relay: RelayProcess;
  let publisher: Publisher;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${relay.http}${path}`, { headers });
  const withToken = (path: string) => `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token('cam'))}`;
  const media = async (query = '') => await (await get(withToken(`/hls/cam/source/index.m3u8${query}`))).text();

  before(async () => {
    relay = await startRelay('all', {
      RELAY_STREAMS: JSON.stringify([
        { name: 'cam', key: KEY },
        { name: 'idle', key: 'hls-idle-key-0123456789' },
        { name: 'life', key: LIFE_KEY, transcode: false },
        { name: 'dvr', key: DVR_KEY, transcode: false, dvrWindowS: 60 },
      ]),
      // Three segments in a live playlist: the DVR stream's window shows against it.
      RELAY_HLS_LIVE_SEGMENTS: '3',
      RELAY_AUTH_PLAYBACK_SECRETS: JSON.stringify([PLAY_SECRET]),
      RELAY_TRANSCODE_ENABLED: 'true',
      RELAY_TRANSCODE_LADDER: JSON.stringify([{ name: '180p', height: 180, videoKbps: 300, audioKbps: 64, preset: 'ultrafast' }]),
    });
    // OBS-like: H.264 High with B-frames, AAC 48 kHz, a keyframe every second.
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '640x360', bitrate: '800k', gop: 30 });
    chromium = await launchChromium();
    await waitFor(
      'both renditions live',
      async () => ((await (await get('/api/streams/cam')).json()) as { renditions: unknown[] }).renditions.length === 2,
      30_000,
    );
  });

  after(async () => {
    await chromium?.close();
    await publisher?.stop();
    await relay?.stop();
  });

  test('the multivariant playlist lists every rendition with BANDWIDTH, RESOLUTION, CODECS and FRAME-RATE, and carries the token', async () => {
    const res = await get(withToken('/hls/cam/index.m3u8'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('cache-control') ?? '', /max-age=\d/);
    const text = await res.text();
    const parsed = HLS.parse(text) as HLS.types.MasterPlaylist;
    assert.deepEqual(
      parsed.variants.map((v) => [v.uri.split('?')[0], v.resolution?.height, v.codecs?.split(',')[1]]),
      [
        ['source/index.m3u8', 360, 'mp4a.40.2'],
        ['180p/index.m3u8', 180, 'mp4a.40.2'],
      ],
    );
    for (const v of parsed.variants) {
      assert.ok(v.bandwidth > 100_000 && (v.averageBandwidth ?? 0) > 0, `${v.uri}: ${v.bandwidth}`);
      assert.equal(v.frameRate, 30);
      assert.match(v.uri, /\?token=/, 'the token rides on every URI');
    }
    assert.equal((await get('/hls/cam/index.m3u8')).status, 401, 'no token: refused');
    const other = await get(`/hls/cam/index.m3u8?token=${encodeURIComponent(token('idle'))}`);
    assert.equal(other.status, 403, "another stream's token: refused");
    const offline = await get(`/hls/idle/index.m3u8?token=${encodeURIComponent(token('idle'))}`);
    assert.equal(offline.status, 404);
    assert.equal(((await offline.json()) as { code: string }).code, 'STREAM_OFFLINE');
  });

  test('the media playlist is LL-HLS: parts within PART-TARGET, segments from keyframes, server control, preload hint, rendition report, PROGRAM-DATE-TIME', async () => {
    await media(); // the first request makes the playlist; let it fill
    await waitFor('three segments', async () => (HLS.parse(await media()) as HLS.types.MediaPlaylist).segments.filter((s) => s.uri).length >= 3, 15_000);
    // The other rendition joins the reports once it has a playlist here.
    await (await get(withToken('/hls/cam/180p/index.m3u8'))).text();
    const text = await media();
    const parsed = HLS.parse(text) as HLS.types.MediaPlaylist;
    assert.equal(parsed.lowLatencyCompatibility?.canBlockReload, true);
    assert.ok(parsed.partTargetDuration! >= 0.2 && parsed.partTargetDuration! <= 0.5);
    assert.ok(parsed.lowLatencyCompatibility.partHoldBack >= 2 * parsed.partTargetDuration!);
    for (const s of parsed.segments) {
      assert.ok(s.programDateTime && Math.abs(s.programDateTime.getTime() - Date.now()) < 60_000, 'PROGRAM-DATE-TIME from the ingest clock');
      if (s.uri) assert.ok(Math.round(s.duration) <= parsed.targetDuration, `segment ${s.mediaSequenceNumber}: ${s.duration} s`);
      for (const part of (s.parts ?? []).filter((p) => !p.hint)) assert.ok(part.duration! <= parsed.partTargetDuration! + 1e-6);
      if (s.parts?.length && !s.parts[0]!.hint) assert.equal(s.parts[0]!.independent, true, 'a segment starts at a keyframe');
    }
    assert.match(text, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[0-9a-f]{8}-\d+\.\d+\.m4s\?token=/);
    assert.match(text, /#EXT-X-RENDITION-REPORT:URI="\.\.\/180p\/index\.m3u8\?token=[^"]+",LAST-MSN=\d+,LAST-PART=\d+/);
    assert.match(text, /#EXT-X-MAP:URI="[0-9a-f]{8}-init-1\.mp4\?token=/);
    const gz = await get(withToken('/hls/cam/source/index.m3u8'), { 'accept-encoding': 'gzip' });
    assert.equal(gz.headers.get('content-encoding'), 'gzip', 'playlists are compressed');
    // Media: immutable, and the init is an MP4 init segment.
    const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)![1]!;
    const res = await get(`/hls/cam/source/${init}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-control') ?? '', /immutable/);
    assert.equal(Buffer.from(await res.arrayBuffer()).toString('latin1', 4, 8), 'ftyp');
  });

  test('blocking reload: the next part is held and answered the moment it exists; a request too far ahead gets 400', async () => {
    const text = await media();
    const [, msn, part] = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[0-9a-f]{8}-(\d+)\.(\d+)\.m4s/.exec(text)!;
    const asked = performance.now();
    const held = await media(`?_HLS_msn=${msn}&_HLS_part=${part}`);
    const heldMs = performance.now() - asked;
    const parsed = HLS.parse(held) as HLS.types.MediaPlaylist;
    const segment = parsed.segments.find((s) => s.mediaSequenceNumber === Number(msn)) ?? parsed.prefetchSegments[0];
    assert.ok(
      held.includes(`-${msn}.${part}.m4s`) && !held.includes(`PRELOAD-HINT:TYPE=PART,URI="${/[0-9a-f]{8}-/.exec(held)![0]}${msn}.${part}.m4s`),
      'the answer has the part',
    );
    assert.ok(segment !== undefined);
    process.stderr.write(`# blocking reload for part ${msn}.${part}: answered after ${Math.round(heldMs)} ms\n`);
    assert.ok(heldMs < 1500, `answered after ${heldMs} ms (a part lasts about 0.33 s)`);
    // The hinted part itself: held until it exists, then its bytes.
    const next = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(held)![1]!;
    const partRes = await get(`/hls/cam/source/${next}`);
    assert.equal(partRes.status, 200);
    assert.ok((await partRes.arrayBuffer()).byteLength > 1000);
    const far = await get(withToken(`/hls/cam/source/index.m3u8?_HLS_msn=${Number(msn) + 10}&_HLS_part=0`));
    assert.equal(far.status, 400);
    assert.equal(((await far.json()) as { code: string }).code, 'HLS_REQUEST_TOO_FAR');
    const skip = HLS.parse(await media('?_HLS_skip=YES')) as HLS.types.MediaPlaylist;
    assert.ok(skip.skip >= 0);
  });

  test('ffmpeg, an independent HLS client, reads the live multivariant playlist for 20 s and decodes every rendition without an error', async () => {
    const run = await ffmpegClient(`${relay.http}${withToken('/hls/cam/index.m3u8')}`, 20);
    assert.equal(run.status, 0, run.stderr.slice(-2000));
    // ffmpeg 5.1 reads the init segment again at each reload of a live fMP4 playlist and says so
    // ("duplicated MOOV"): it does the same with ffmpeg's own live fMP4 HLS. Nothing else may be said.
    const said = run.stderr.split('\n').filter((l) => l.trim() && !/Found duplicated MOOV Atom|Last message repeated/.test(l));
    assert.deepEqual(said, [], 'no error or warning');
    // Two renditions, each video (30 fps) and audio (48 kHz AAC: 46.9 frames a second), for 20 s.
    const counts = [...run.frames.values()].sort((a, b) => a - b);
    assert.equal(counts.length, 4, `streams decoded: ${JSON.stringify([...run.frames])}`);
    // Every picture: no step in a video stream's frame numbers (checked above, line by line). Each
    // rendition starts three segments from its own end, so one may start up to a segment or two
    // after the other within ffmpeg's 20 s.
    for (const n of counts.slice(0, 2)) assert.ok(n >= 17 * 30, `${n} pictures in 20 s`);
    for (const n of counts.slice(2)) assert.ok(n >= 17 * 46.875, `${n} audio frames in 20 s`);
  });

  test('the watch page plays LL-HLS with hls.js in Chromium: pictures decoded and latency from PROGRAM-DATE-TIME', async () => {
    const page = await chromium.browser.newPage();
    try {
      await page.goto(`${relay.http}/watch/cam?protocol=hls&token=${encodeURIComponent(token('cam'))}`);
      const state = (p: Page) =>
        p.evaluate(() => {
          const r = (window as unknown as { relayPlayer: { protocol?: string; state: string; latencyMs?: number; ttffMs?: number; framesDecoded(): number } })
            .relayPlayer;
          return { protocol: r.protocol, state: r.state, latencyMs: r.latencyMs, ttffMs: r.ttffMs, frames: r.framesDecoded() };
        });
      const first = await waitFor(
        'pictures over HLS',
        async () => {
          const s = await state(page);
          return s.frames > 30 ? s : undefined;
        },
        30_000,
      );
      const later = await waitFor(
        'more pictures',
        async () => {
          const s = await state(page);
          return s.frames > first.frames + 90 && s.latencyMs !== undefined ? s : undefined;
        },
        20_000,
      );
      process.stderr.write(`# hls.js: time to first frame ${Math.round(later.ttffMs ?? -1)} ms, latency ${later.latencyMs} ms\n`);
      assert.equal(later.protocol, 'hls');
      assert.equal(later.state, 'live');
      assert.ok(later.latencyMs! < 6000, `${later.latencyMs} ms behind live`);
    } finally {
      await page.close();
    }
  });

  test("hls.js's adaptive bitrate: with the network throttled below the top rendition, it steps down to 180p and goes on playing", async () => {
    const page = await chromium.browser.newPage();
    const cdp = await chromium.browser.newCDPSession(page);
    try {
      await cdp.send('Network.enable');
      await page.goto(`${relay.http}/watch/cam?protocol=hls&token=${encodeURIComponent(token('cam'))}`);
      const state = () =>
        page.evaluate(() => {
          const r = (window as unknown as { relayPlayer: { hls?: { currentLevel: number; levels: { height: number }[] }; framesDecoded(): number } })
            .relayPlayer;
          const level = r.hls && r.hls.currentLevel >= 0 ? r.hls.levels[r.hls.currentLevel] : undefined;
          return { frames: r.framesDecoded(), height: level?.height };
        });
      // Unthrottled, hls.js climbs to the top rendition (360p, 0.9 Mbit/s with audio).
      await waitFor('the top rendition', async () => ((await state()).height === 360 && (await state()).frames > 30 ? true : undefined), 30_000);
      // 600 kbit/s: room for 180p (0.36 Mbit/s with audio), not for 360p.
      const rate = (600 * 1000) / 8;
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: rate, uploadThroughput: rate });
      const down = await waitFor(
        'the step down',
        async () => {
          const s = await state();
          return s.height === 180 ? s : undefined;
        },
        40_000,
        250,
      );
      const later = await waitFor(
        'pictures after the step down',
        async () => {
          const s = await state();
          return s.frames > down.frames + 60 ? s : undefined;
        },
        15_000,
      );
      assert.equal(later.height, 180);
    } finally {
      await cdp.detach().catch(() => {});
      await page.close();
    }
  });

  test('a stream with a DVR window keeps its segments in the playlist, and hls.js seeks back into them and plays', async () => {
    const dvr = startPublisher({ url: relay.rtmpUrl(DVR_KEY), size: '320x180', bitrate: '300k', gop: 30 });
    const page = await chromium.browser.newPage();
    try {
      await waitFor(
        'the stream live',
        async () => ((await (await get('/api/streams/dvr')).json()) as { renditions: unknown[] }).renditions.length === 1,
        20_000,
      );
      const playlist = async (stream: string) =>
        HLS.parse(await (await get(`/hls/${stream}/source/index.m3u8?token=${encodeURIComponent(token(stream))}`)).text()) as HLS.types.MediaPlaylist;
      await playlist('dvr'); // made on the first request: the window counts from here
      const parsed = await waitFor(
        'ten segments',
        async () => {
          const p = await playlist('dvr');
          return p.segments.filter((s) => s.uri).length >= 10 ? p : undefined;
        },
        30_000,
      );
      assert.equal(parsed.mediaSequenceBase, 0, 'nothing dropped within the window');
      assert.ok(Date.now() - parsed.segments[0]!.programDateTime!.getTime() >= 9000, 'the first segment is ten seconds old');
      const live = await playlist('cam');
      assert.ok(live.segments.filter((s) => s.uri).length <= 3, 'a stream without a window lists hls.liveSegments');

      // hls.js: play at live, then seek to the start of the window; pictures go on, far behind live.
      await page.goto(`${relay.http}/watch/dvr?protocol=hls&token=${encodeURIComponent(token('dvr'))}`);
      const state = () =>
        page.evaluate(() => {
          const r = (window as unknown as { relayPlayer: { latencyMs?: number; framesDecoded(): number } }).relayPlayer;
          const v = document.querySelector('video')!;
          return { frames: r.framesDecoded(), latencyMs: r.latencyMs, seekable: v.seekable.length ? v.seekable.end(0) - v.seekable.start(0) : 0 };
        });
      await waitFor('pictures at live', async () => ((await state()).frames > 30 ? true : undefined), 30_000);
      const before = await state();
      assert.ok(before.seekable > 8, `${before.seekable} s seekable`);
      await page.evaluate(() => {
        const v = document.querySelector('video')!;
        v.currentTime = v.seekable.start(0) + 1;
      });
      const back = await waitFor(
        'pictures far behind live',
        async () => {
          const s = await state();
          return s.frames > before.frames + 60 && (s.latencyMs ?? 0) > 6000 ? s : undefined;
        },
        20_000,
      );
      process.stderr.write(`# DVR: ${before.seekable.toFixed(1)} s seekable; after the seek, ${back.latencyMs} ms behind live\n`);
    } finally {
      await page.close();
      await dvr.stop();
    }
  });

  test('metrics: HLS requests and bytes by kind, requests held while blocked, and viewers estimated from sessions', async () => {
    const text = await media();
    const [, msn, part] = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[0-9a-f]{8}-(\d+)\.(\d+)\.m4s/.exec(text)!;
    // Two parts ahead: held for about two parts' time, long enough to be seen in a scrape.
    const next = Number(part) + 1;
    const held = media(`?_HLS_msn=${msn}&_HLS_part=${next}`);
    await waitFor('the request held', async () => (sample(await scrape(relay.http), 'relay_hls_blocked_requests') ?? 0) >= 1, 5000, 20);
    assert.match(await held, new RegExp(`-${msn}\\.${next}\\.m4s|-${Number(msn) + 1}\\.0\\.m4s`));
    const after = await scrape(relay.http);
    for (const kind of ['multivariant', 'media', 'part', 'init'])
      assert.ok((sample(after, 'relay_hls_requests_total', { kind, status: '200' }) ?? 0) > 0, `${kind} requests counted`);
    assert.ok((sample(after, 'relay_hls_bytes_total', { kind: 'part' }) ?? 0) > 100_000, 'part bytes counted');
    // Sessions are told apart by address and user agent: two players here are two viewers more.
    for (const agent of ['player-one', 'player-two']) await (await get(withToken('/hls/cam/source/index.m3u8'), { 'user-agent': agent })).text();
    const viewers = sample(await scrape(relay.http), 'relay_hls_viewers') ?? 0;
    assert.ok(viewers >= 3, `viewers: ${viewers} (this process and the two players at least)`);
  });

  test('the end of a stream adds EXT-X-ENDLIST; the publisher coming back continues the playlist after EXT-X-DISCONTINUITY with a new EXT-X-MAP, and hls.js follows', async () => {
    const playlist = async () => await (await get(`/hls/life/source/index.m3u8?token=${encodeURIComponent(token('life'))}`)).text();
    let life = startPublisher({ url: relay.rtmpUrl(LIFE_KEY), size: '320x180', bitrate: '300k', gop: 30 });
    const page = await chromium.browser.newPage();
    const state = () =>
      page.evaluate(() => {
        const r = (window as unknown as { relayPlayer: { state: string; framesDecoded(): number } }).relayPlayer;
        return { state: r.state, frames: r.framesDecoded() };
      });
    try {
      await waitFor(
        'the stream live',
        async () => ((await (await get('/api/streams/life')).json()) as { renditions: unknown[] }).renditions.length === 1,
        20_000,
      );
      await waitFor('two segments', async () => ((await playlist()).match(/#EXTINF/g) ?? []).length >= 2, 15_000);
      // A viewer over HLS, through the end and the return.
      await page.goto(`${relay.http}/watch/life?protocol=hls&token=${encodeURIComponent(token('life'))}`);
      await waitFor('pictures', async () => ((await state()).frames > 30 ? true : undefined), 20_000);
      await life.stop();
      const ended = await waitFor(
        'EXT-X-ENDLIST',
        async () => {
          const text = await playlist();
          return text.includes('#EXT-X-ENDLIST') ? text : undefined;
        },
        15_000,
      );
      assert.doesNotMatch(ended, /PRELOAD-HINT/);
      const atEnd = await waitFor(
        'the viewer at the end',
        async () => {
          const s = await state();
          return s.state === 'ended' ? s : undefined;
        },
        15_000,
      );
      const before = (HLS.parse(ended) as HLS.types.MediaPlaylist).segments.at(-1)!.mediaSequenceNumber;
      life = startPublisher({ url: relay.rtmpUrl(LIFE_KEY), size: '320x180', bitrate: '300k', gop: 30 });
      const again = await waitFor(
        'the new publication in the playlist',
        async () => {
          const text = await playlist();
          return text.includes('#EXT-X-DISCONTINUITY') && !text.includes('#EXT-X-ENDLIST') && /init-2\.mp4/.test(text) ? text : undefined;
        },
        20_000,
      );
      const parsed = HLS.parse(again) as HLS.types.MediaPlaylist;
      const first = parsed.segments.find((seg) => seg.discontinuity)!;
      assert.equal(first.mediaSequenceNumber, before + 1, 'numbering goes on');
      assert.match(first.map.uri, /init-2\.mp4/);
      // hls.js read an ended playlist no more; the page starts it afresh once the stream is live again.
      await waitFor(
        'the viewer playing the new publication',
        async () => {
          const s = await state();
          return s.state === 'live' && s.frames > atEnd.frames + 60 ? s : undefined;
        },
        30_000,
      );
    } finally {
      await page.close();
      await life.stop();
    }
  });
});
