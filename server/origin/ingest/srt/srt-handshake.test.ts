import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RelayError, type ErrorCode } from '../../../core/errors.ts';
import { codeOfHandshakeRefusal, readStreamId, srtRejectionOf } from './srt-access.ts';
import { KeyFlag, newKeyingMaterial, writeKeyingMaterial } from './srt-crypto.ts';
import { cookieValid, inductionResponse, peerIpField, readConclusion, rejection, SrtReject, synCookie, type ListenerSettings } from './srt-handshake.ts';
import {
  HandshakeType,
  HsExt,
  readHsReq,
  SRT_MAGIC,
  SrtCommand,
  SrtFlag,
  writeHsReq,
  writeStringExtension,
  type Handshake,
  type HandshakeExtension,
} from './srt-packet.ts';

const SETTINGS: ListenerSettings = { latencyMs: 120, passphrase: '', mss: 1500, flowWindow: 8192 };
const LIVE_FLAGS = SrtFlag.TSBPDSND | SrtFlag.TSBPDRCV | SrtFlag.HAICRYPT | SrtFlag.TLPKTDROP | SrtFlag.NAKREPORT | SrtFlag.REXMITFLG;

/** A conclusion as libsrt 1.5's caller sends it (ffmpeg's defaults), with what a test changes. */
function conclusion(
  options: { streamId?: string; flags?: number; latency?: [number, number]; extra?: HandshakeExtension[]; version?: number } = {},
): Handshake {
  const [receiverLatency, senderLatency] = options.latency ?? [120, 120];
  const extensions: HandshakeExtension[] = [
    { type: SrtCommand.HSREQ, content: writeHsReq({ version: 0x010501, flags: options.flags ?? LIVE_FLAGS, receiverLatency, senderLatency }) },
    ...(options.streamId !== undefined ? [{ type: SrtCommand.SID, content: writeStringExtension(options.streamId) }] : []),
    ...(options.extra ?? []),
  ];
  return {
    version: options.version ?? 5,
    encryption: 0,
    extensionField: HsExt.HSREQ | (extensions.some((e) => e.type === SrtCommand.KMREQ) ? HsExt.KMREQ : 0) | HsExt.CONFIG,
    isn: 555,
    mss: 1500,
    flowWindow: 8192,
    type: HandshakeType.CONCLUSION,
    socketId: 0xabc,
    cookie: 1,
    peerIp: Buffer.alloc(16),
    extensions,
  };
}

test('a live-mode caller is accepted: its stream id, ISN, and the larger latency of both sides each way', () => {
  const result = readConclusion(conclusion({ streamId: 'the-key', latency: [300, 80] }), SETTINGS);
  assert.ok(result.ok);
  assert.equal(result.streamId, 'the-key');
  assert.equal(result.isn, 555);
  assert.equal(result.callerSocketId, 0xabc);
  assert.equal(result.latencyMs, 120, "what the caller sends: max(our 120, its sender's 80)");
  assert.equal(result.peerLatencyMs, 300, 'what we would send: max(120, its receiver 300)');
  const response = result.response(0x1234);
  assert.deepEqual(
    [response.version, response.type, response.socketId, response.isn, response.extensionField],
    [5, HandshakeType.CONCLUSION, 0x1234, 555, HsExt.HSREQ],
  );
  const hsrsp = response.extensions.find((e) => e.type === SrtCommand.HSRSP)!;
  assert.deepEqual(readHsReq(hsrsp.content), { version: 0x010501, flags: LIVE_FLAGS, receiverLatency: 120, senderLatency: 300 });
});

test("callers the relay cannot take are refused with libsrt's reason for it", () => {
  const cases: [string, Handshake, number][] = [
    ['HSv4', conclusion({ version: 4 }), SrtReject.VERSION],
    ['file mode', conclusion({ flags: LIVE_FLAGS | SrtFlag.STREAM }), SrtReject.MESSAGEAPI],
    ['no TSBPD', conclusion({ flags: LIVE_FLAGS & ~SrtFlag.TSBPDSND }), SrtReject.MESSAGEAPI],
    ['file congestion control', conclusion({ extra: [{ type: SrtCommand.CONGESTION, content: writeStringExtension('file') }] }), SrtReject.CONGESTION],
    ['FEC', conclusion({ extra: [{ type: SrtCommand.FILTER, content: writeStringExtension('fec,cols:10') }] }), SrtReject.FILTER],
    ['bonding', conclusion({ extra: [{ type: SrtCommand.GROUP, content: Buffer.alloc(8) }] }), SrtReject.GROUP],
    ['a stream id over 512 characters', conclusion({ streamId: 'k'.repeat(513) }), SrtReject.BAD_REQUEST],
    ['no HSREQ', { ...conclusion(), extensions: [] }, SrtReject.ROGUE],
  ];
  for (const [what, hs, reason] of cases) {
    const result = readConclusion(hs, SETTINGS);
    assert.ok(!result.ok, what);
    assert.equal(result.reason, reason, what);
    assert.equal(codeOfHandshakeRefusal(result.reason), reason === SrtReject.BAD_REQUEST ? 'SRT_STREAMID_INVALID' : 'SRT_HANDSHAKE_UNSUPPORTED');
  }
  assert.ok(readConclusion(conclusion({ extra: [{ type: SrtCommand.CONGESTION, content: writeStringExtension('live') }] }), SETTINGS).ok, 'live is fine');
});

test('encryption: the right passphrase gives a decryptor and KMRSP echoes the keys; a wrong one BADSECRET; one side only UNSECURE', () => {
  const passphrase = 'listener passphrase';
  const material = newKeyingMaterial(32);
  const kmreq = (secret: string): HandshakeExtension => ({ type: SrtCommand.KMREQ, content: writeKeyingMaterial(material, secret) });
  const good = readConclusion(conclusion({ streamId: 'k', extra: [kmreq(passphrase)] }), { ...SETTINGS, passphrase });
  assert.ok(good.ok && good.decryptor);
  const response = good.response(9);
  assert.equal(response.encryption, 4, 'PBKEYLEN 32 bytes / 8');
  assert.equal(response.extensionField, HsExt.HSREQ | HsExt.KMREQ);
  assert.ok(response.extensions.find((e) => e.type === SrtCommand.KMRSP)?.content.equals(kmreq(passphrase).content));
  const clear = Buffer.from('payload');
  const sealed = good.decryptor.encrypt(3, KeyFlag.EVEN, clear)!;
  assert.ok(good.decryptor.decrypt(3, KeyFlag.EVEN, sealed)?.equals(clear));
  const wrong = readConclusion(conclusion({ extra: [kmreq('some other passphrase')] }), { ...SETTINGS, passphrase });
  assert.ok(!wrong.ok && wrong.reason === SrtReject.BADSECRET);
  assert.equal(codeOfHandshakeRefusal(SrtReject.BADSECRET), 'SRT_PASSPHRASE_INVALID');
  const none = readConclusion(conclusion(), { ...SETTINGS, passphrase });
  assert.ok(!none.ok && none.reason === SrtReject.UNSECURE);
  const unexpected = readConclusion(conclusion({ extra: [kmreq(passphrase)] }), SETTINGS);
  assert.ok(!unexpected.ok && unexpected.reason === SrtReject.UNSECURE);
  assert.equal(codeOfHandshakeRefusal(SrtReject.UNSECURE), 'SRT_ENCRYPTION_MISMATCH');
});

test('induction: HSv5, the magic, our cookie for this address and minute (and the last); a rejection is 1000 + the reason', () => {
  const secret = Buffer.alloc(32, 1);
  const induction = { ...conclusion(), version: 4, type: HandshakeType.INDUCTION, extensions: [], extensionField: 2 };
  const cookie = synCookie(secret, '10.0.0.1', 4000, 100);
  const answer = inductionResponse(induction, 77, cookie, peerIpField('10.0.0.1'));
  assert.deepEqual([answer.version, answer.extensionField, answer.type, answer.socketId, answer.cookie], [5, SRT_MAGIC, HandshakeType.INDUCTION, 77, cookie]);
  assert.deepEqual([...answer.peerIp.subarray(0, 4)], [1, 0, 0, 10]);
  assert.ok(cookieValid(secret, '10.0.0.1', 4000, 100 * 60_000 + 5, cookie));
  assert.ok(cookieValid(secret, '10.0.0.1', 4000, 101 * 60_000 + 5, cookie), 'a minute later');
  assert.ok(!cookieValid(secret, '10.0.0.1', 4000, 102 * 60_000 + 5, cookie), 'two minutes later');
  assert.ok(!cookieValid(secret, '10.0.0.2', 4000, 100 * 60_000, cookie), 'another address');
  assert.equal(rejection(conclusion(), SrtReject.FORBIDDEN, 77).type, 2403);
});

test('the stream id: a plain key, #!::r=<key>,m=publish, or #!::r=<stream>,s=<key>; other modes and shapes refused', () => {
  assert.deepEqual(readStreamId('plain-key-123'), { key: 'plain-key-123' });
  assert.deepEqual(readStreamId('#!::r=the-key,m=publish'), { key: 'the-key' });
  assert.deepEqual(readStreamId('#!::m=publish,r=cam,s=the-key,u=someone'), { key: 'the-key', stream: 'cam' });
  const refused = (sid: string, code: ErrorCode) =>
    assert.throws(
      () => readStreamId(sid),
      (err: unknown) => err instanceof RelayError && err.code === code,
      sid,
    );
  refused('', 'SRT_STREAMID_INVALID');
  refused('#!::r=key', 'SRT_MODE_UNSUPPORTED'); // the mode defaults to request (playback)
  refused('#!::r=key,m=request', 'SRT_MODE_UNSUPPORTED');
  refused('#!::m=publish', 'SRT_STREAMID_INVALID');
  refused('#!::m=publish,garbage', 'SRT_STREAMID_INVALID');
});

test("each refusal an SRT caller can get has its own SRT rejection code, so that the encoder's message names it", () => {
  const codes: ErrorCode[] = [
    'SRT_STREAMID_INVALID',
    'STREAM_KEY_EXPIRED',
    'TOO_MANY_CONNECTIONS',
    'STREAM_KEY_INVALID',
    'SRT_MODE_UNSUPPORTED',
    'STREAM_ALREADY_PUBLISHING',
    'ORIGIN_SHUTTING_DOWN',
    'SRT_TOO_MANY_CONNECTIONS',
    'SRT_PASSPHRASE_INVALID',
    'SRT_ENCRYPTION_MISMATCH',
  ];
  const srt = codes.map(srtRejectionOf);
  assert.equal(new Set(srt).size, codes.length);
  assert.deepEqual(srt, [1400, 1401, 1402, 1403, 1405, 1409, 1503, 5, 10, 11]);
  assert.equal(srtRejectionOf('BUS_UNAVAILABLE'), 1500);
});
