import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { H264Packetizer } from 'werift';
import { encodeEnd, encodeFrame, FrameDecoder } from '../../server/core/bus/frame-codec.ts';
import { RelayError, type ErrorCode } from '../../server/core/errors.ts';
import { decodeAmf0 } from '../../server/core/media/flv/amf0.ts';
import { FlvFrameReader } from '../../server/core/media/flv/flv-frame-reader.ts';
import { RtpFrameAssembler } from '../../server/origin/ingest/rtp-frame-assembler.ts';
import { parseAvcC } from '../../server/core/media/h264.ts';
import type { Frame } from '../../server/core/media/frame.ts';
import { readOffer } from '../../server/core/webrtc/sdp-sessions.ts';
import { TS_PACKET_SIZE, TsDemuxer } from '../../server/core/media/mpegts/ts-demuxer.ts';
import { newKeyingMaterial, SrtDecryptor, writeKeyingMaterial } from '../../server/origin/ingest/srt/srt-crypto.ts';
import { readConclusion } from '../../server/origin/ingest/srt/srt-handshake.ts';
import {
  HandshakeType,
  HsExt,
  readHandshake,
  readPacket,
  SrtCommand,
  SrtPacketError,
  writeControl,
  writeData,
  writeHandshake,
  writeHsReq,
  writeStringExtension,
} from '../../server/origin/ingest/srt/srt-packet.ts';
import { SrtReceiver } from '../../server/origin/ingest/srt/srt-receiver.ts';
import { enhancedRtmpClip } from '../helpers/enhanced-rtmp.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../helpers/flv-file.ts';
import { FUZZ_SEED, iterations, mutate, mutateText, Rng } from '../helpers/fuzz.ts';
import { readFileSync } from 'node:fs';

/**
 * Fuzzing of everything that reads bytes from outside, as pure functions: FLV tags
 * (the RTMP adapter hands us their bodies), AMF0 metadata, bus messages, RTP
 * packets from WHIP publishers, SDP offers. The rule for each: a result, or a
 * RelayError with one of the stable codes that input can earn. Anything else (a
 * TypeError, a RangeError, a hang, an allocation the input asked for) is a bug.
 */
const tags = readFlvFile(FIXTURE_OBS_LIKE);
const frames: Frame[] = (() => {
  const reader = new FlvFrameReader();
  return tags.flatMap((t) => reader.push(t.type, t.timestamp, t.body, 1) ?? []);
})();

function expectOnly<T>(allowed: readonly ErrorCode[], what: () => T, input: () => string): T | undefined {
  try {
    return what();
  } catch (err) {
    if (err instanceof RelayError && allowed.includes(err.code)) return undefined;
    assert.fail(`seed ${FUZZ_SEED}: ${(err as Error)?.name}: ${(err as Error)?.message} for ${input()}`);
  }
}

const hex = (b: Buffer) => `${b.length} bytes ${b.subarray(0, 48).toString('hex')}`;

describe(`fuzzing the parsers (seed ${FUZZ_SEED}; RELAY_FUZZ_SEED=${FUZZ_SEED} repeats it)`, () => {
  test('mutated FLV tags give frames or RTMP_PROTOCOL_ERROR / CODEC_UNSUPPORTED, never another exception, and frames stay well-formed', () => {
    const rng = new Rng(FUZZ_SEED);
    const bodies = tags.map((t) => t.body);
    for (let session = 0; session < iterations(40); session++) {
      const reader = new FlvFrameReader();
      for (const tag of tags) {
        const body = rng.int(8) === 0 ? mutate(rng, tag.body, bodies) : tag.body;
        const type = rng.int(50) === 0 ? rng.pick([8, 9, 18, 0, 255]) : tag.type;
        const frame = expectOnly(
          ['RTMP_PROTOCOL_ERROR', 'CODEC_UNSUPPORTED'],
          () => reader.push(type, tag.timestamp, body, 1),
          () => `tag type ${type}: ${hex(body)}`,
        );
        if (frame) {
          assert.ok(Buffer.isBuffer(frame.payload) && Number.isFinite(frame.dts) && Number.isFinite(frame.cto), `seed ${FUZZ_SEED}: a frame with a bad field`);
          assert.ok(frame.payload.length <= body.length, 'no payload larger than its tag');
        }
      }
    }
  });

  test('mutated Enhanced RTMP tags (HEVC and AV1 from ffmpeg-encoded clips) give frames or RTMP_PROTOCOL_ERROR / CODEC_UNSUPPORTED, never another exception', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-ertmp-'));
    try {
      for (const codec of ['hevc', 'av1'] as const) {
        const enhanced = enhancedRtmpClip(dir, codec, { size: '160x96', seconds: 1, gop: 10 });
        const rng = new Rng(FUZZ_SEED + (codec === 'hevc' ? 10 : 11));
        const bodies = enhanced.map((t) => t.body);
        for (let session = 0; session < iterations(40); session++) {
          const reader = new FlvFrameReader();
          for (const tag of enhanced) {
            // The configuration records are what the new parsers read: mutate them most.
            const isRecord = tag.type === 9 && (tag.body[0]! & 0x0f) === 0;
            const body = rng.int(isRecord ? 2 : 8) === 0 ? mutate(rng, tag.body, bodies) : tag.body;
            const frame = expectOnly(
              ['RTMP_PROTOCOL_ERROR', 'CODEC_UNSUPPORTED'],
              () => reader.push(tag.type, tag.timestamp, body, 1),
              () => `${codec} tag type ${tag.type}: ${hex(body)}`,
            );
            if (frame) assert.ok(frame.payload.length <= body.length && Number.isFinite(frame.cto), `seed ${FUZZ_SEED}: a bad ${codec} frame`);
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('mutated and random AMF0 gives values or RTMP_PROTOCOL_ERROR, never another exception', () => {
    const rng = new Rng(FUZZ_SEED + 1);
    const scripts = tags.filter((t) => t.type === 18).map((t) => t.body);
    assert.ok(scripts.length > 0, 'the fixture has metadata');
    for (let i = 0; i < iterations(3000); i++) {
      const input = i % 4 === 0 ? rng.bytes(rng.int(300)) : mutate(rng, rng.pick(scripts), scripts);
      expectOnly(
        ['RTMP_PROTOCOL_ERROR'],
        () => decodeAmf0(input),
        () => hex(input),
      );
    }
  });

  test('deeply nested AMF0 is refused, not a stack overflow', () => {
    // 100 000 nested strict arrays of one element each.
    const nested = Buffer.concat([Buffer.alloc(0), ...Array.from({ length: 100_000 }, () => Buffer.from([0x0a, 0, 0, 0, 1])), Buffer.from([0x05])]);
    expectOnly(
      ['RTMP_PROTOCOL_ERROR'],
      () => decodeAmf0(nested),
      () => 'nested arrays',
    );
  });

  test('mutated bus messages decode or fail with BUS_MESSAGE_INVALID / CODEC_UNSUPPORTED, and never allocate what a header claims', () => {
    const rng = new Rng(FUZZ_SEED + 2);
    // Real messages: with init, without, split into parts, end markers.
    const messages = frames.slice(0, 120).flatMap((f, i) => encodeFrame(f, { counter: i, token: 7 }, f.keyframe, 4096 + rng.int(20_000)));
    messages.push(encodeEnd({ counter: 999, token: 7 }, 1));
    for (let session = 0; session < iterations(30); session++) {
      const decoder = new FrameDecoder();
      for (const message of messages) {
        const input = rng.int(6) === 0 ? mutate(rng, message, messages) : message;
        const before = process.memoryUsage().arrayBuffers;
        const out = expectOnly(
          ['BUS_MESSAGE_INVALID', 'CODEC_UNSUPPORTED'],
          () => decoder.decode(input),
          () => hex(input),
        );
        const grown = process.memoryUsage().arrayBuffers - before;
        assert.ok(grown < 64 * 1024 * 1024, `seed ${FUZZ_SEED}: decoding ${input.length} bytes allocated ${grown} bytes`);
        if (out?.kind === 'frame') assert.ok(Number.isFinite(out.frame.payload.length));
      }
    }
  });

  test('mutated RTP from a WHIP publisher gives frames or a RelayError, never another exception', () => {
    const rng = new Rng(FUZZ_SEED + 3);
    const video = frames.filter((f) => f.track === 'video').slice(0, 90);
    const { sps, pps } = parseAvcC(video[0]!.init.video!.config);
    const packetizer = new H264Packetizer({ naluLengthSize: 4, inputFormat: 'length-prefixed', parameterSets: [sps[0]!, pps[0]!] });
    const packets = video.flatMap((f, i) =>
      packetizer
        .packetize(f.payload, i * 3000, { isKeyframe: f.keyframe })
        .map((p) => ({ sequenceNumber: p.header.sequenceNumber, timestamp: p.header.timestamp, marker: p.header.marker, payload: p.payload })),
    );
    const payloads = packets.map((p) => p.payload);
    for (let session = 0; session < iterations(20); session++) {
      const assembler = new RtpFrameAssembler({ video: true, audio: true });
      for (const p of packets) {
        const packet =
          rng.int(5) === 0
            ? {
                sequenceNumber: rng.int(8) === 0 ? rng.int(65536) : p.sequenceNumber,
                timestamp: rng.int(8) === 0 ? rng.int(2 ** 32) : p.timestamp,
                marker: rng.int(8) === 0 ? !p.marker : p.marker,
                payload: mutate(rng, p.payload, payloads),
              }
            : p;
        expectOnly(
          ['CODEC_UNSUPPORTED', 'RTMP_PROTOCOL_ERROR'],
          () => assembler.video(packet, 1),
          () => hex(packet.payload),
        );
        if (rng.int(4) === 0) {
          const audio = { sequenceNumber: rng.int(65536), timestamp: rng.int(2 ** 32), marker: false, payload: rng.bytes(rng.int(200)) };
          expectOnly(
            ['CODEC_UNSUPPORTED'],
            () => assembler.audio(audio, 1),
            () => hex(audio.payload),
          );
        }
      }
    }
  });

  test('mutated SDP offers are read or refused with SDP_INVALID / CONTENT_TYPE_INVALID', () => {
    const rng = new Rng(FUZZ_SEED + 4);
    const offer =
      'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=rtpmap:96 H264/90000\r\n';
    for (let i = 0; i < iterations(3000); i++) {
      const body = mutateText(rng, offer);
      const type = rng.int(10) === 0 ? mutateText(rng, 'application/sdp') : 'application/sdp';
      expectOnly(
        ['SDP_INVALID', 'CONTENT_TYPE_INVALID'],
        () => readOffer(type, body),
        () => JSON.stringify(body.slice(0, 80)),
      );
    }
  });
  test('mutated MPEG-TS (the OBS-like clip remuxed by ffmpeg) gives frames or CODEC_UNSUPPORTED, never another exception, with bounded frames', () => {
    const ts = readFileSync(new URL('../fixtures/obs-like-2s.mpegts', import.meta.url));
    const packets = Array.from({ length: ts.length / TS_PACKET_SIZE }, (_, i) => ts.subarray(i * TS_PACKET_SIZE, (i + 1) * TS_PACKET_SIZE));
    const rng = new Rng(FUZZ_SEED + 5);
    for (let session = 0; session < iterations(30); session++) {
      const demuxer = new TsDemuxer();
      // SRT-sized chunks of seven packets, some mutated (PSI and PES headers included), some lost.
      for (let i = 0; i < packets.length; i += 7) {
        const chunk = Buffer.concat(packets.slice(i, i + 7).map((p) => (rng.int(10) === 0 ? mutate(rng, p, packets) : p)));
        if (rng.int(30) === 0) {
          demuxer.lost();
          continue;
        }
        const out = expectOnly(
          ['CODEC_UNSUPPORTED'],
          () => demuxer.push(chunk, 1),
          () => hex(chunk),
        );
        if (!out) break; // refused: the caller is disconnected
        for (const f of out)
          assert.ok(Number.isFinite(f.dts) && Number.isFinite(f.cto) && f.payload.length <= 8 * 1024 * 1024, `seed ${FUZZ_SEED}: a bad frame`);
      }
      expectOnly(
        ['CODEC_UNSUPPORTED'],
        () => demuxer.end(1),
        () => 'end',
      );
    }
  });

  test('mutated SRT packets and handshakes are read or refused with SrtPacketError; conclusions are accepted or refused, never thrown; the receiver takes anything', () => {
    const rng = new Rng(FUZZ_SEED + 6);
    const passphrase = 'fuzzing passphrase';
    const hsreq = writeHsReq({ version: 0x010501, flags: 0x3f, receiverLatency: 120, senderLatency: 120 });
    const conclusion = writeControl(
      0,
      0,
      0,
      0,
      0,
      writeHandshake({
        version: 5,
        encryption: 0,
        extensionField: HsExt.HSREQ | HsExt.KMREQ | HsExt.CONFIG,
        isn: 1,
        mss: 1500,
        flowWindow: 8192,
        type: HandshakeType.CONCLUSION,
        socketId: 5,
        cookie: 9,
        peerIp: Buffer.alloc(16),
        extensions: [
          { type: SrtCommand.HSREQ, content: hsreq },
          { type: SrtCommand.SID, content: writeStringExtension('#!::r=key,m=publish') },
          { type: SrtCommand.KMREQ, content: writeKeyingMaterial(newKeyingMaterial(16), passphrase) },
        ],
      }),
    );
    const material = newKeyingMaterial(16);
    const receiver = new SrtReceiver({
      isn: 1,
      latencyMs: 120,
      peerSocketId: 5,
      startTime: 0,
      peerStart: 0,
      send: () => {},
      deliver: () => {},
      lost: () => {},
      decryptor: new SrtDecryptor(material),
      passphrase,
      bufferPackets: 1024,
    });
    const data = writeData({
      seq: 1,
      position: 3,
      inOrder: false,
      key: 1,
      retransmitted: false,
      messageNumber: 1,
      timestamp: 0,
      destination: 5,
      payload: Buffer.alloc(1316, 0x47),
    });
    const ack = writeControl(6, 0, 1, 0, 5);
    const km = writeControl(0x7fff, SrtCommand.KMREQ, 0, 0, 5, writeKeyingMaterial(material, passphrase));
    const samples = [conclusion, data, ack, km];
    for (let i = 0; i < iterations(5000); i++) {
      const input = i % 5 === 0 ? rng.bytes(rng.int(200)) : mutate(rng, rng.pick(samples), samples);
      try {
        const packet = readPacket(input);
        if (packet.kind === 'data') receiver.data(packet, i);
        else if (packet.type === 0) readConclusion(readHandshake(packet.body), { latencyMs: 120, passphrase, mss: 1500, flowWindow: 8192 });
        else receiver.control(packet, i);
        receiver.tick(i);
      } catch (err) {
        assert.ok(err instanceof SrtPacketError, `seed ${FUZZ_SEED}: ${(err as Error).stack} for ${hex(input)}`);
      }
    }
  });
});
