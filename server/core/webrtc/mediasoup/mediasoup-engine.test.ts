// The engine against a real mediasoup worker (the project's build; the test command builds it first).
// It pins what the engine assumes of mediasoup's internals: a Router hands out its own capabilities
// object, and its consumers take the header extension ids and RTX payload types renumbered there.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import sdpTransform from 'sdp-transform';
import { createLogger } from '../../log.ts';
import { RelayError } from '../../errors.ts';
import type { Frame } from '../../media/frame.ts';
import { fixtureVideoWithOpus } from '../../../../test/helpers/flv-file.ts';
import { waitFor } from '../../../../test/helpers/ports.ts';
import type { IngestSession, RtcBroadcast } from '../webrtc-engine.ts';
import { findMediasoupWorker, MediasoupEngine } from './mediasoup-engine.ts';

const chromium = readFileSync(new URL('../../../../test/fixtures/whep-offer-chromium.sdp', import.meta.url), 'utf8');
const refusedWith = (code: string) => (err: unknown) => err instanceof RelayError && err.code === code;

/** The fixture's frames, their video said to be constrained baseline without B-frames (as a WHIP source's is), with Opus beside it. */
function frames(): Frame[] {
  return fixtureVideoWithOpus().map((f) => {
    const init = { ...f.init, video: { ...f.init.video!, codecString: 'avc1.42e01f', bFrames: false }, opus: { codec: 'opus' as const, codecString: 'opus' } };
    return { ...f, init } as Frame;
  });
}

const noWerift = {
  ingest: (): Promise<IngestSession> => Promise.reject(new Error('not here')),
  broadcast: (): RtcBroadcast => {
    throw new Error('not here');
  },
  warmUp: async () => {},
};

describe('the mediasoup engine with a real worker', () => {
  let engine: MediasoupEngine;
  let broadcast: RtcBroadcast;

  before(async () => {
    const worker = findMediasoupWorker();
    assert.ok(worker, 'the test command builds the worker first');
    engine = await MediasoupEngine.start(
      { workers: 1, serverPort: 0, announcedAddresses: ['127.0.0.1'], iceServers: [], viewers: 'mediasoup', ingest: 'mediasoup' },
      worker,
      noWerift,
      createLogger({ level: 'silent', pretty: false }),
    );
    broadcast = engine.broadcast({ layers: 1, primaryLayer: 0, keyframeRequestMinMs: 1000 });
    for (const f of frames().slice(0, 40)) broadcast.push(f, 0);
  });

  after(async () => {
    broadcast?.close();
    await engine?.close();
  });

  test("answers Chromium's offer in its own numbers: its payload types (RTX included) and its header extension ids, every candidate, no trickle", async () => {
    const session = await broadcast.join(chromium, performance.now());
    try {
      const answer = sdpTransform.parse(session.answer);
      const [video, audio] = answer.media;
      assert.equal(video!.payloads, '109 114', 'H.264 constrained baseline as Chromium numbers it, with its RTX');
      assert.equal(video!.fmtp.find((f) => f.payload === 114)?.config, 'apt=109');
      assert.equal(String(audio!.payloads), '111');
      const ids: Record<string, number> = Object.fromEntries((video!.ext ?? []).map((e): [string, number] => [e.uri.split(/[/:]/).at(-1) ?? '', e.value]));
      assert.deepEqual(ids, {
        mid: 9,
        'abs-send-time': 2,
        'video-orientation': 3,
        'draft-holmer-rmcat-transport-wide-cc-extensions-01': 4,
        'playout-delay': 5,
      });
      assert.ok(
        video!.rtcpFb?.some((fb) => fb.type === 'transport-cc'),
        'transport-wide congestion control on',
      );
      assert.equal(video!.endOfCandidates, 'end-of-candidates');
      assert.ok((video!.candidates ?? []).some((c) => c.transport === 'udp' && c.ip === '127.0.0.1'));
    } finally {
      await session.close();
    }
  });

  test('offers it cannot take are refused with their codes, and the broadcast serves on', async () => {
    await assert.rejects(broadcast.join('v=0\r\nnot sdp', performance.now()), refusedWith('SDP_INVALID'));
    await assert.rejects(broadcast.join(chromium.replace(/^a=rtpmap:\d+ (H264|opus)\/.*\r?\n/gm, ''), performance.now()), refusedWith('CODEC_UNSUPPORTED'));
    const session = await broadcast.join(chromium, performance.now());
    await session.close();
  });

  test('a worker killed with -9 ends its sessions and is started again; a new session is answered', async () => {
    const session = await broadcast.join(chromium, performance.now());
    const closed = new Promise<void>((resolve) => session.onClosed(resolve));
    const [pid] = engine.workerPids;
    process.kill(pid!, 'SIGKILL');
    await closed;
    // A new worker, and the broadcast's producers made again there by the next frames.
    await waitFor('a new worker', () => engine.workerPids.length === 1 && engine.workerPids[0] !== pid, 10_000);
    const joining = broadcast.join(chromium, performance.now());
    for (const f of frames().slice(40, 80)) broadcast.push(f, 0);
    const again = await joining;
    await again.close();
  });
});
