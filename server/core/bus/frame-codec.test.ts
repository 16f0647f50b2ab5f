import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RelayError } from '../errors.ts';
import type { Frame, StreamInit } from '../media/frame.ts';
import { encodeEnd, encodeFrame, FrameDecoder, HEADER_SIZE, readToken } from './frame-codec.ts';

const init: StreamInit = {
  video: { codec: 'h264', config: Buffer.from('0164001fffe1', 'hex'), codecString: 'avc1.64001f', width: 1280, height: 720 },
  audio: { codec: 'aac', config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
  metadata: { encoder: 'obs', framerate: 30 },
};

function frame(over: Partial<Frame> = {}): Frame {
  return {
    track: 'video',
    codec: 'h264',
    dts: 123_456_789,
    cto: -3000,
    keyframe: true,
    payload: Buffer.from('0000000265aabbcc', 'hex'),
    receivedAt: 1_760_000_000_123.25,
    init,
    ...over,
  };
}

test('a keyframe round-trips with its init, timestamps, fencing token and counter', () => {
  const [msg, ...rest] = encodeFrame(frame(), { counter: 7, token: 42 }, true, 1 << 20);
  assert.equal(rest.length, 0);
  const out = new FrameDecoder().decode(msg!);
  assert.equal(out.kind, 'frame');
  if (out.kind !== 'frame') return;
  assert.deepEqual(out.stamp, { counter: 7, token: 42 });
  assert.equal(out.frame.dts, 123_456_789);
  assert.equal(out.frame.cto, -3000);
  assert.equal(out.frame.receivedAt, 1_760_000_000_123.25);
  assert.equal(out.frame.keyframe, true);
  assert.deepEqual(out.frame.payload, frame().payload);
  assert.deepEqual(out.frame.init, init);
});

test('frames without an init get the last init seen, the same object while it does not change', () => {
  const decoder = new FrameDecoder();
  const a = decoder.decode(encodeFrame(frame(), { counter: 0, token: 1 }, true, 1 << 20)[0]!);
  const b = decoder.decode(encodeFrame(frame({ keyframe: false }), { counter: 1, token: 1 }, false, 1 << 20)[0]!);
  const c = decoder.decode(encodeFrame(frame(), { counter: 2, token: 1 }, true, 1 << 20)[0]!);
  assert.ok(a.kind === 'frame' && b.kind === 'frame' && c.kind === 'frame');
  assert.equal(b.frame.init, a.frame.init);
  assert.equal(c.frame.init, a.frame.init);
  const changed = { ...init, metadata: { encoder: 'other' } };
  const d = decoder.decode(encodeFrame(frame({ init: changed }), { counter: 3, token: 1 }, true, 1 << 20)[0]!);
  assert.ok(d.kind === 'frame');
  assert.notEqual(d.frame.init, a.frame.init);
  assert.equal(d.frame.init.metadata.encoder, 'other');
});

test('a frame larger than the message limit is split and reassembled byte for byte', () => {
  const payload = Buffer.alloc(5000);
  for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
  const messages = encodeFrame(frame({ payload }), { counter: 9, token: 3 }, true, 2048);
  assert.ok(messages.length >= 3, `${messages.length} parts`);
  assert.ok(messages.every((m) => m.length <= 2048));
  const decoder = new FrameDecoder();
  const results = messages.map((m) => decoder.decode(m));
  assert.ok(results.slice(0, -1).every((r) => r.kind === 'partial'));
  const last = results.at(-1)!;
  assert.ok(last.kind === 'frame');
  assert.deepEqual(last.frame.payload, payload);
  assert.equal(last.frame.keyframe, true);
});

test('a continuation without its start is skipped, not misread', () => {
  const payload = Buffer.alloc(5000, 1);
  const messages = encodeFrame(frame({ payload }), { counter: 1, token: 1 }, true, 2048);
  const decoder = new FrameDecoder();
  for (const m of messages.slice(1)) assert.equal(decoder.decode(m).kind, 'partial');
  const next = decoder.decode(encodeFrame(frame(), { counter: 2, token: 1 }, true, 2048)[0]!);
  assert.equal(next.kind, 'frame');
});

test('an end-of-stream message carries its stamp', () => {
  const out = new FrameDecoder().decode(encodeEnd({ counter: 99, token: 5 }, 12.5));
  assert.deepEqual(out, { kind: 'end', stamp: { counter: 99, token: 5 }, receivedAt: 12.5 });
});

test('garbage on the bus is refused with BUS_MESSAGE_INVALID', () => {
  const decoder = new FrameDecoder();
  for (const bad of [Buffer.alloc(0), Buffer.alloc(HEADER_SIZE), Buffer.from('hello world, this is not a frame at all!!!')]) {
    assert.throws(
      () => decoder.decode(bad),
      (e: RelayError) => e.code === 'BUS_MESSAGE_INVALID',
    );
  }
  const msg = encodeFrame(frame(), { counter: 1, token: 1 }, true, 1 << 20)[0]!;
  msg.writeUInt16BE(0xffff, 40); // init length past the end
  assert.throws(
    () => decoder.decode(msg),
    (e: RelayError) => e.code === 'BUS_MESSAGE_INVALID',
  );
});

test('the fencing token can be read from the header alone, before any decoding', () => {
  const msg = encodeFrame(frame(), { counter: 3, token: 12345 }, true, 1 << 20)[0]!;
  assert.equal(readToken(msg), 12345);
  assert.equal(readToken(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)), 12345);
  assert.equal(readToken(Buffer.from('garbage')), undefined);
});

test('an Opus frame beside AAC round-trips with the init that names both audio codecs', () => {
  const both: StreamInit = { ...init, opus: { codec: 'opus', config: Buffer.alloc(0), codecString: 'opus', sampleRate: 48000, channels: 2 } };
  const decoder = new FrameDecoder();
  decoder.decode(encodeFrame(frame({ init: both }), { counter: 0, token: 1 }, true, 1 << 20)[0]!);
  const out = decoder.decode(
    encodeFrame(
      frame({ track: 'audio', codec: 'opus', dts: 1800, cto: 0, payload: Buffer.from([0xfc, 1, 2]), init: both }),
      { counter: 1, token: 1 },
      false,
      1 << 20,
    )[0]!,
  );
  assert.ok(out.kind === 'frame');
  assert.equal(out.frame.codec, 'opus');
  assert.equal(out.frame.track, 'audio');
  assert.deepEqual(out.frame.init.opus, both.opus);
  assert.equal(out.frame.init.audio?.codec, 'aac');
});
