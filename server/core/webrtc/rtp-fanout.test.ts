import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixtureVideoWithOpus } from '../../../test/helpers/flv-file.ts';
import type { RtpOut } from './webrtc-engine.ts';
import { RtpFanout, type RtpSink } from './rtp-fanout.ts';

const fixture = fixtureVideoWithOpus;

class Sink implements RtpSink {
  video: RtpOut[] = [];
  audio: RtpOut[] = [];
  sendVideo(p: RtpOut): void {
    this.video.push(p);
  }
  sendAudio(p: RtpOut): void {
    this.audio.push(p);
  }
  /** Pictures received: one per marker bit, by timestamp. */
  pictures(): number[] {
    return this.video.filter((p) => p.marker).map((p) => p.timestamp);
  }
}

describe('RTP fan-out of a WebRTC rendition', () => {
  const frames = fixture();
  const keyframes = frames.filter((f) => f.track === 'video' && f.keyframe);
  const secondKey = frames.indexOf(keyframes[1]!);

  test('a viewer joining mid-GOP gets the cached keyframe stamped as the newest picture, then nothing of the video until the next keyframe; audio at once', () => {
    let asked = 0;
    const fanout = new RtpFanout({ keyframeRequestMinMs: 1000, wantKeyframe: () => asked++ });
    const joinAt = secondKey - 20;
    frames.slice(0, joinAt).forEach((f) => fanout.push(f));
    const sink = new Sink();
    fanout.add(sink);
    assert.equal(asked, 1, 'the source is asked for a keyframe');
    const lastVideo = frames
      .slice(0, joinAt)
      .filter((f) => f.track === 'video')
      .at(-1)!;
    assert.deepEqual(sink.pictures(), [(lastVideo.dts + lastVideo.cto + 1) >>> 0], 'the cached keyframe, stamped one tick after the newest picture');
    assert.equal(sink.video[0]!.payload[0]! & 0x1f, 24, 'parameter sets first (STAP-A)');
    frames.slice(joinAt, secondKey).forEach((f) => fanout.push(f));
    assert.equal(sink.pictures().length, 1, 'no delta frame before the next keyframe');
    assert.equal(sink.audio.length, frames.slice(joinAt, secondKey).filter((f) => f.track === 'audio').length, 'audio flows at once');
    frames.slice(secondKey).forEach((f) => fanout.push(f));
    const videoAfter = frames.slice(secondKey).filter((f) => f.track === 'video');
    assert.equal(sink.pictures().length, 1 + videoAfter.length, 'every picture from the keyframe on');
  });

  test('every viewer gets the very same packet objects (packetized once)', () => {
    const fanout = new RtpFanout({ keyframeRequestMinMs: 1000 });
    const a = new Sink();
    const b = new Sink();
    fanout.add(a);
    fanout.add(b);
    frames.forEach((f) => fanout.push(f));
    assert.ok(a.video.length > frames.length / 2);
    assert.equal(a.video.length, b.video.length);
    a.video.forEach((p, i) => assert.equal(p, b.video[i], `packet ${i}`));
    // Sequence numbers run on without a gap, across the 16-bit wrap if it comes.
    for (let i = 1; i < a.video.length; i++) assert.equal(a.video[i]!.sequenceNumber, (a.video[i - 1]!.sequenceNumber + 1) & 0xffff);
    // Opus runs on its 48 kHz clock: 90 kHz ticks x 48/90.
    const audio = frames.filter((f) => f.track === 'audio');
    assert.equal(a.audio[1]!.timestamp - a.audio[0]!.timestamp, Math.round(((audio[1]!.dts - audio[0]!.dts) * 48) / 90));
  });

  test('a keyframe request (PLI) is answered from the cache, at most once per the minimum interval', () => {
    let now = 0;
    const fanout = new RtpFanout({ keyframeRequestMinMs: 1000, now: () => now });
    const sink = new Sink();
    fanout.add(sink);
    frames.slice(0, secondKey - 5).forEach((f) => fanout.push(f));
    const before = sink.pictures().length;
    fanout.keyframeRequested(sink);
    now = 500;
    fanout.keyframeRequested(sink);
    assert.equal(sink.pictures().length, before + 1, 'one answer within the interval');
    frames.slice(secondKey - 5, secondKey).forEach((f) => fanout.push(f));
    assert.equal(sink.pictures().length, before + 1, 'held back until the next keyframe');
    now = 1500;
    fanout.keyframeRequested(sink);
    assert.equal(sink.pictures().length, before + 2);
  });

  test('every packet carries the wall-clock time of its media time: one mapping for audio and video, anchored on the least delayed frame', () => {
    const fanout = new RtpFanout({ keyframeRequestMinMs: 1000 });
    const sink = new Sink();
    fanout.add(sink);
    // Ingest 100 ms after the media clock, except one frame that came 40 ms early and another 300 ms late.
    const timed = frames.slice(0, 60).map((f, i) => ({ ...f, receivedAt: 1_000_000 + (f.dts + f.cto) / 90 + (i === 10 ? 60 : i === 20 ? 400 : 100) }));
    timed.forEach((f) => fanout.push(f));
    const audioAfter = sink.audio.filter((p) => p.timestamp >= Math.round((timed[10]!.dts * 48) / 90));
    for (const p of audioAfter) assert.equal(p.wallMs, 1_000_060 + (p.timestamp * 90) / 48 / 90, 'audio: the media time plus the least delay seen');
    const late = sink.video.filter((p) => p.timestamp >= timed[20]!.dts + timed[20]!.cto);
    for (const p of late) assert.ok(Math.abs(p.wallMs - (1_000_060 + p.timestamp / 90)) < 1e-6, 'a late frame does not move the mapping');
  });
});
