import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from 'werift';
import { RTP_HEADER_BYTES, SrtpProtector, writeRtpHeader, type SrtpProfile } from './srtp-protector.ts';

const PROFILES: [SrtpProfile, number, number][] = [
  ['aead-aes-128-gcm', ProtectionProfileAeadAes128Gcm, 12],
  ['aes128-cm-hmac-sha1-80', ProtectionProfileAes128CmHmacSha1_80, 14],
];

/** Two ends of one SRTP session (werift's, an independent implementation): ours protects with the sender's session keys. */
function sessions(profile: number, saltBytes: number) {
  const a = { key: randomBytes(16), salt: randomBytes(saltBytes) };
  const b = { key: randomBytes(16), salt: randomBytes(saltBytes) };
  const sender = new SrtpSession({ keys: { localMasterKey: a.key, localMasterSalt: a.salt, remoteMasterKey: b.key, remoteMasterSalt: b.salt }, profile });
  const receiver = new SrtpSession({ keys: { localMasterKey: b.key, localMasterSalt: b.salt, remoteMasterKey: a.key, remoteMasterSalt: a.salt }, profile });
  const ctx = (sender as unknown as { localContext: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer; srtpSessionAuthTag: Buffer } }).localContext;
  // werift pads the GCM session salt to 14 bytes; RFC 7714's is the first 12.
  return { sender, receiver, keys: { key: ctx.srtpSessionKey, salt: ctx.srtpSessionSalt.subarray(0, saltBytes), authKey: ctx.srtpSessionAuthTag } };
}

describe('SRTP protection', () => {
  for (const [name, profile, saltBytes] of PROFILES) {
    test(`${name}: packets are byte-identical to werift's and its receiver decrypts and authenticates them`, () => {
      const { sender, receiver, keys } = sessions(profile, saltBytes);
      const protector = new SrtpProtector({ profile: name, ...keys });
      for (const [seq, size, marker] of [
        [0, 1200, false],
        [1, 17, true],
        [65535, 900, false],
        [4242, 1, true],
      ] as const) {
        const payload = randomBytes(size);
        const header = writeRtpHeader(Buffer.alloc(RTP_HEADER_BYTES), 96, marker, seq, 123456789, 0xdeadbeef);
        const packet = Buffer.concat(protector.protect(header, payload, 0));
        const expected = sender.encrypt(payload, new RtpHeader({ payloadType: 96, marker, sequenceNumber: seq, timestamp: 123456789, ssrc: 0xdeadbeef }));
        assert.deepEqual(packet, expected, `sequence ${seq}`);
        const clear = receiver.decrypt(packet);
        assert.deepEqual(clear.subarray(RTP_HEADER_BYTES), payload);
        assert.deepEqual(clear.subarray(0, RTP_HEADER_BYTES), header);
      }
    });

    test(`${name}: a rollover counter past 0 protects under the right index, and a changed byte fails authentication`, () => {
      const { receiver, keys } = sessions(profile, saltBytes);
      const protector = new SrtpProtector({ profile: name, ...keys });
      const payload = randomBytes(300);
      // The receiver learns the rollover from the sequence wrapping: 65535 then 0 is index 65536.
      receiver.decrypt(Buffer.concat(protector.protect(writeRtpHeader(Buffer.alloc(12), 96, false, 65535, 1, 7), payload, 0)));
      const wrapped = Buffer.concat(protector.protect(writeRtpHeader(Buffer.alloc(12), 96, false, 0, 2, 7), payload, 1));
      assert.deepEqual(receiver.decrypt(wrapped).subarray(12), payload);
      const tampered = Buffer.concat(protector.protect(writeRtpHeader(Buffer.alloc(12), 96, false, 1, 3, 7), payload, 1));
      tampered[20]! ^= 1;
      assert.throws(() => receiver.decrypt(tampered), /authenticat/i);
    });
  }

  test('keys of the wrong size are refused at construction', () => {
    assert.throws(() => new SrtpProtector({ profile: 'aead-aes-128-gcm', key: randomBytes(16), salt: randomBytes(14) }), /12-byte salt/);
    assert.throws(() => new SrtpProtector({ profile: 'aes128-cm-hmac-sha1-80', key: randomBytes(16), salt: randomBytes(14) }), /authentication key/);
    assert.throws(() => new SrtpProtector({ profile: 'aead-aes-128-gcm', key: randomBytes(32), salt: randomBytes(12) }), /16-byte/);
  });
});
