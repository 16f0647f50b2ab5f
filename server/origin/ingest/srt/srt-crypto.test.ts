import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { test } from 'node:test';
import { KeyFlag, newKeyingMaterial, readKeyingMaterial, SrtCryptoError, SrtDecryptor, writeKeyingMaterial } from './srt-crypto.ts';

const PASSPHRASE = 'correct horse battery';

test('keying material wrapped with a passphrase unwraps with it, for AES-128, 192 and 256, one key or both', () => {
  for (const length of [16, 24, 32]) {
    const material = newKeyingMaterial(length);
    const back = readKeyingMaterial(writeKeyingMaterial(material, PASSPHRASE), PASSPHRASE);
    assert.ok(back.even?.equals(material.even!), `${length * 8}-bit even key`);
    assert.ok(back.salt.equals(material.salt));
  }
  const both = { ...newKeyingMaterial(16), keys: 3, odd: Buffer.alloc(16, 7) };
  const back = readKeyingMaterial(writeKeyingMaterial(both, PASSPHRASE), PASSPHRASE);
  assert.ok(back.even?.equals(both.even!) && back.odd?.equals(both.odd));
});

test('another passphrase fails the key wrap integrity check: badsecret', () => {
  const km = writeKeyingMaterial(newKeyingMaterial(16), PASSPHRASE);
  assert.throws(
    () => readKeyingMaterial(km, 'not the passphrase'),
    (err: unknown) => err instanceof SrtCryptoError && err.reason === 'badsecret',
  );
});

test('AES-GCM (cipher 3) is unsupported and a truncated message is malformed', () => {
  const km = writeKeyingMaterial(newKeyingMaterial(16), PASSPHRASE);
  const gcm = Buffer.from(km);
  gcm[8] = 3;
  assert.throws(
    () => readKeyingMaterial(gcm, PASSPHRASE),
    (err: unknown) => err instanceof SrtCryptoError && err.reason === 'unsupported',
  );
  assert.throws(
    () => readKeyingMaterial(km.subarray(0, km.length - 4), PASSPHRASE),
    (err: unknown) => err instanceof SrtCryptoError && err.reason === 'malformed',
  );
});

test("payloads decrypt with AES-CTR whose counter is the salt's first 112 bits XOR the packet index (HaiCrypt's layout)", () => {
  const material = newKeyingMaterial(16);
  const seq = 0x01020304;
  const clear = Buffer.from('a transport stream packet, or seven'.repeat(40));
  // The counter written out by hand: zeros, the index at bytes 10-13, XOR the salt over 0-13, block counter 0.
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(seq, 10);
  for (let i = 0; i < 14; i++) iv[i] = iv[i]! ^ material.salt[i]!;
  const cipher = createCipheriv('aes-128-ctr', material.even!, iv);
  const sent = Buffer.concat([cipher.update(clear), cipher.final()]);
  const decryptor = new SrtDecryptor(material);
  assert.ok(decryptor.decrypt(seq, KeyFlag.EVEN, sent)?.equals(clear));
  assert.equal(decryptor.decrypt(seq, KeyFlag.ODD, sent), undefined, 'no odd key yet');
  decryptor.update({ keys: KeyFlag.ODD, salt: material.salt, odd: Buffer.alloc(16, 9) });
  assert.ok(decryptor.decrypt(seq, KeyFlag.EVEN, sent)?.equals(clear), 'a refresh keeps the key it does not replace');
  assert.ok(decryptor.decrypt(seq, KeyFlag.ODD, decryptor.encrypt(seq, KeyFlag.ODD, clear)!)?.equals(clear));
});
