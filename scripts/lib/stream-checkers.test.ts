import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { frameBinary, frameText } from '../../edge/egress/ws/ws-frame.ts';
import { FIXTURE_OBS_LIKE, readFlvTags } from '../../test/helpers/flv-file.ts';
import { FlvChecker, RtmpPlayChecker, WsFmp4Checker, amf0, rtmpMessage, type StreamChecker } from './stream-checkers.ts';

/** Feeds `bytes` in pieces of varying sizes (1 byte up to 1500), the way sockets split them. */
function feed(checker: StreamChecker, bytes: Buffer, seed = 7): Buffer[] {
  const replies: Buffer[] = [];
  let p = 0;
  let x = seed;
  while (p < bytes.length) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (x % 1500);
    const reply = checker.push(bytes.subarray(p, p + n));
    if (reply) replies.push(reply);
    p += n;
  }
  return replies;
}

/** An FLV file from tags, as an HTTP-FLV body. */
function flv(tags: { type: number; timestamp: number; body: Buffer }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('464c5601050000000900000000', 'hex')];
  for (const t of tags) {
    const h = Buffer.alloc(11);
    h[0] = t.type;
    h.writeUIntBE(t.body.length, 1, 3);
    h.writeUIntBE(t.timestamp & 0xffffff, 4, 3);
    h[7] = t.timestamp >>> 24;
    const size = Buffer.alloc(4);
    size.writeUInt32BE(11 + t.body.length);
    parts.push(h, t.body, size);
  }
  return Buffer.concat(parts);
}

test('the FLV checker counts every coded video frame of an OBS-like file, split anywhere, with no gap', () => {
  const bytes = readFileSync(FIXTURE_OBS_LIKE);
  const frames = readFlvTags(bytes).filter((t) => t.type === 9 && t.body[1] === 1).length;
  for (const seed of [1, 2, 3]) {
    const checker = new FlvChecker();
    feed(checker, bytes, seed);
    assert.equal(checker.error, undefined);
    assert.deepEqual(
      { frames: checker.counts.frames, gaps: checker.counts.gaps, lost: checker.counts.lost, bytes: checker.counts.bytes },
      { frames, gaps: 0, lost: 0, bytes: bytes.length },
    );
  }
});

test('the FLV checker counts a gap and the frames lost when video tags are missing', () => {
  const tags = readFlvTags(readFileSync(FIXTURE_OBS_LIKE));
  const video = tags.filter((t) => t.type === 9 && t.body[1] === 1);
  const dropped = new Set([video[10], video[11], video[30]]);
  const checker = new FlvChecker();
  feed(checker, flv(tags.filter((t) => !dropped.has(t))));
  assert.equal(checker.counts.frames, video.length - 3);
  assert.equal(checker.counts.gaps, 2);
  assert.equal(checker.counts.lost, 3);
});

test('the FLV checker reports a tag type that cannot be FLV instead of reading on', () => {
  const checker = new FlvChecker();
  checker.push(flv([{ type: 0x1f, timestamp: 0, body: Buffer.alloc(4) }]));
  assert.match(checker.error!, /tag type 31/);
});

/** A `[prft] moof mdat` payload with a given mfhd sequence number (only what the checker reads). */
function fragment(sequence: number, prft = true): Buffer {
  const mfhd = Buffer.alloc(16);
  mfhd.writeUInt32BE(16);
  mfhd.write('mfhd', 4, 'latin1');
  mfhd.writeUInt32BE(sequence, 12);
  const moof = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('moof'), mfhd]);
  const mdat = Buffer.concat([Buffer.from([0, 0, 0x4e, 0x28]), Buffer.from('mdat'), Buffer.alloc(20000, 7)]);
  const head = prft ? Buffer.concat([Buffer.from([0, 0, 0, 32]), Buffer.from('prft'), Buffer.alloc(24)]) : Buffer.alloc(0);
  return Buffer.concat([head, moof, mdat]);
}

test('the WebSocket fMP4 checker follows mfhd sequence numbers across frames of every header size and ignores text and init segments', () => {
  const init = Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.from('ftypisom'), Buffer.alloc(4), Buffer.alloc(200000)]); // > 64 KiB: 8-byte length
  const wire = Buffer.concat([
    frameText(JSON.stringify({ type: 'status', state: 'live' })),
    frameText(JSON.stringify({ type: 'init' })),
    frameBinary(init),
    ...[1, 2, 3, 4, 7, 8].map((s) => frameBinary(fragment(s, s !== 3))),
    frameBinary(Buffer.alloc(0)),
    frameBinary(fragment(9).subarray(0, 100)), // short (2-byte length)... still a fragment head
  ]);
  for (const seed of [1, 5, 9]) {
    const checker = new WsFmp4Checker();
    feed(checker, wire, seed);
    assert.equal(checker.error, undefined);
    assert.deepEqual({ frames: checker.counts.frames, gaps: checker.counts.gaps, lost: checker.counts.lost }, { frames: 7, gaps: 1, lost: 2 });
  }
});

test('the WebSocket checker refuses masked frames from a server', () => {
  const checker = new WsFmp4Checker();
  checker.push(Buffer.from([0x82, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0]));
  assert.match(checker.error!, /masked/);
});

/** Chunks of one RTMP message on chunk stream `csid` with a given first header type, at `chunkSize`. */
function chunks(csid: number, fmt: 0 | 1 | 2 | 3, type: number, timestamp: number, payload: Buffer, chunkSize: number): Buffer {
  const out: Buffer[] = [];
  const basic = Buffer.from([(fmt << 6) | csid]);
  const extended = timestamp >= 0xffffff;
  const ts = Buffer.alloc(3);
  ts.writeUIntBE(extended ? 0xffffff : timestamp, 0, 3);
  const len = Buffer.alloc(3);
  len.writeUIntBE(payload.length, 0, 3);
  const header = fmt === 0 ? [ts, len, Buffer.from([type, 1, 0, 0, 0])] : fmt === 1 ? [ts, len, Buffer.from([type])] : fmt === 2 ? [ts] : [];
  const ext = Buffer.alloc(4);
  ext.writeUInt32BE(timestamp);
  out.push(basic, ...header, ...(extended && fmt < 3 ? [ext] : []));
  for (let p = 0; p < payload.length; p += chunkSize) {
    if (p > 0) out.push(Buffer.from([0xc0 | csid]));
    out.push(payload.subarray(p, p + chunkSize));
  }
  return Buffer.concat(out);
}

const video = (size: number) => Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0x43]), Buffer.alloc(size, 9)]);

test('the RTMP checker reads chunk headers of every type, follows Set Chunk Size and counts video frames by their timestamps', () => {
  const chunkSize = Buffer.alloc(4);
  chunkSize.writeUInt32BE(4096);
  const stream = Buffer.concat([
    rtmpMessage(2, 1, 0, chunkSize),
    chunks(20, 0, 20, 0, amf0('onStatus', 0, null, { code: 'NetStream.Play.Start' }), 4096),
    chunks(6, 0, 9, 1000, Buffer.from([0x17, 0, 0, 0, 0, 1, 2, 3]), 4096), // AVC sequence header: not a frame
    chunks(6, 1, 9, 0, video(9000), 4096), // 1000
    chunks(4, 0, 8, 1000, Buffer.alloc(300, 0xaf), 4096), // audio, on a chunk stream of its own
    chunks(6, 2, 9, 33, video(9000), 4096), // 1033 (types 2 and 3 keep the last message's length)
    chunks(6, 3, 9, 0, video(9000), 4096), // 1066: type 3 starts a message with the last delta
    chunks(6, 1, 9, 101, video(50), 4096), // 1167: two frames missing
    chunks(6, 0, 9, 0x1000000, video(50), 4096), // extended timestamp: a jump of hours, counted as one gap
  ]);
  for (const seed of [1, 4, 8]) {
    const checker = new RtmpPlayChecker();
    feed(checker, stream, seed);
    assert.equal(checker.error, undefined);
    assert.equal(checker.counts.frames, 5);
    assert.equal(checker.counts.gaps, 2);
  }
});

test('the RTMP checker answers pings and acknowledges received bytes once a window is set', () => {
  const windowSize = Buffer.alloc(4);
  windowSize.writeUInt32BE(10_000);
  const checker = new RtmpPlayChecker();
  const replies = feed(
    checker,
    Buffer.concat([
      rtmpMessage(2, 5, 0, windowSize),
      rtmpMessage(2, 4, 0, Buffer.from([0, 6, 0, 0, 0x30, 0x39])),
      ...Array.from({ length: 30 }, (_, i) => chunks(6, i === 0 ? 0 : 2, 9, i === 0 ? 0 : 33, video(400), 128)),
    ]),
  );
  const all = Buffer.concat(replies);
  // A Ping Response (user control event 7) carrying the ping's timestamp, then Acknowledgements (type 3).
  assert.ok(all.includes(Buffer.from([0, 7, 0, 0, 0x30, 0x39])), 'a ping response');
  const acks = replies.filter((r) => r[7] === 3);
  assert.ok(acks.length >= 1, 'an acknowledgement');
  assert.equal(checker.counts.frames, 30);
  assert.equal(checker.counts.gaps, 0);
});

test('the RTMP checker reports a chunk stream that starts without a full header', () => {
  const checker = new RtmpPlayChecker();
  checker.push(Buffer.from([0xc9, 1, 2, 3]));
  assert.match(checker.error!, /chunk stream 9/);
});
