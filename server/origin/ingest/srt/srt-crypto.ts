import { createDecipheriv, createCipheriv, pbkdf2Sync, randomBytes } from 'node:crypto';

/**
 * SRT's encryption (libsrt's HaiCrypt; docs/features/encryption.md): the caller
 * sends its stream encrypting keys (SEK, even and/or odd) in a Keying Material
 * message (KMREQ), wrapped (AES key wrap, RFC 3394) with a key derived from the
 * passphrase (PBKDF2-HMAC-SHA1, 2048 iterations, the salt's last 8 bytes). Payloads
 * are AES-CTR with a counter built from the salt and the packet's sequence number.
 * Node's crypto does the AES; this file does the framing.
 */

export class SrtCryptoError extends Error {
  constructor(
    /** What went wrong: the passphrase (the key did not unwrap), or an unsupported or malformed message. */
    readonly reason: 'badsecret' | 'unsupported' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

/** Key flags, as in the KM message and data packets' KK bits. */
export const KeyFlag = { EVEN: 1, ODD: 2 } as const;

const KM_HEADER = 16;
const CIPHER_AES_CTR = 2;
const WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const PBKDF2_ITERATIONS = 2048;
const PBKDF2_SALT_BYTES = 8;

export interface KeyingMaterial {
  /** KK: which keys it carries. */
  keys: number;
  salt: Buffer;
  /** The stream encrypting keys, even and odd, when carried. */
  even?: Buffer;
  odd?: Buffer;
}

/** Reads a KM message (the KMREQ extension's content) and unwraps its keys with the passphrase. */
export function readKeyingMaterial(km: Buffer, passphrase: string): KeyingMaterial {
  if (km.length < KM_HEADER) throw new SrtCryptoError('malformed', `a ${km.length}-byte keying material message`);
  const version = (km[0]! >> 4) & 7;
  const packetType = km[0]! & 0x0f;
  if (version !== 1 || packetType !== 2 || km.readUInt16BE(1) !== 0x2029) throw new SrtCryptoError('malformed', 'not a keying material message');
  const keys = km[3]! & 3;
  if (keys === 0) throw new SrtCryptoError('malformed', 'a keying material message without keys');
  if (km[8] !== CIPHER_AES_CTR) throw new SrtCryptoError('unsupported', `cipher ${km[8]} (the relay decrypts AES-CTR)`);
  if (km[9] !== 0) throw new SrtCryptoError('unsupported', `authentication ${km[9]}`);
  const saltLength = km[14]! * 4;
  const keyLength = km[15]! * 4;
  if (saltLength !== 16) throw new SrtCryptoError('malformed', `a ${saltLength}-byte salt`);
  if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) throw new SrtCryptoError('malformed', `a ${keyLength}-byte key`);
  const count = keys === 3 ? 2 : 1;
  const wrappedLength = count * keyLength + 8;
  if (km.length !== KM_HEADER + saltLength + wrappedLength)
    throw new SrtCryptoError('malformed', `a ${km.length}-byte keying material message for ${count} key(s) of ${keyLength}`);
  const salt = Buffer.from(km.subarray(KM_HEADER, KM_HEADER + saltLength));
  const kek = pbkdf2Sync(passphrase, salt.subarray(saltLength - PBKDF2_SALT_BYTES), PBKDF2_ITERATIONS, keyLength, 'sha1');
  let unwrapped: Buffer;
  try {
    const decipher = createDecipheriv(`id-aes${keyLength * 8}-wrap`, kek, WRAP_IV);
    unwrapped = Buffer.concat([decipher.update(km.subarray(KM_HEADER + saltLength)), decipher.final()]);
  } catch {
    throw new SrtCryptoError('badsecret', 'the keys did not unwrap with the passphrase');
  }
  const material: KeyingMaterial = { keys, salt };
  if (keys === 3) {
    material.even = unwrapped.subarray(0, keyLength);
    material.odd = unwrapped.subarray(keyLength);
  } else if (keys === KeyFlag.EVEN) material.even = unwrapped;
  else material.odd = unwrapped;
  return material;
}

/** A KM message for `material` (what a caller sends; for tests and tools). */
export function writeKeyingMaterial(material: KeyingMaterial, passphrase: string): Buffer {
  const keys = [material.even, material.odd].filter((k): k is Buffer => k !== undefined);
  const keyLength = keys[0]!.length;
  const kek = pbkdf2Sync(passphrase, material.salt.subarray(material.salt.length - PBKDF2_SALT_BYTES), PBKDF2_ITERATIONS, keyLength, 'sha1');
  const cipher = createCipheriv(`id-aes${keyLength * 8}-wrap`, kek, WRAP_IV);
  const wrapped = Buffer.concat([cipher.update(Buffer.concat(keys)), cipher.final()]);
  const header = Buffer.alloc(KM_HEADER);
  header[0] = 0x12;
  header.writeUInt16BE(0x2029, 1);
  header[3] = material.keys;
  header[8] = CIPHER_AES_CTR;
  header[10] = 2; // stream encapsulation: SRT
  header[14] = material.salt.length / 4;
  header[15] = keyLength / 4;
  return Buffer.concat([header, material.salt, wrapped]);
}

/** Fresh keying material (tests and tools). */
export function newKeyingMaterial(keyLength = 16): KeyingMaterial {
  return { keys: KeyFlag.EVEN, salt: randomBytes(16), even: randomBytes(keyLength) };
}

/** Decrypts data packets with the keys of the last keying material. */
export class SrtDecryptor {
  private material: KeyingMaterial;
  private readonly iv = Buffer.alloc(16);

  constructor(material: KeyingMaterial) {
    this.material = material;
  }

  /** A refreshed keying material (a KMREQ after the handshake): its keys replace the ones it carries. */
  update(material: KeyingMaterial): void {
    this.material = {
      keys: material.keys | this.material.keys,
      salt: material.salt,
      even: material.even ?? this.material.even,
      odd: material.odd ?? this.material.odd,
    };
  }

  /** The payload of the data packet `seq` sent with key flag `key` (1 even, 2 odd); undefined without that key. */
  decrypt(seq: number, key: number, payload: Buffer): Buffer | undefined {
    const sek = key === KeyFlag.EVEN ? this.material.even : key === KeyFlag.ODD ? this.material.odd : undefined;
    if (!sek) return undefined;
    return aesCtr(sek, this.counter(seq), payload);
  }

  /** The same transform encrypts (tests and tools). */
  encrypt(seq: number, key: number, payload: Buffer): Buffer | undefined {
    return this.decrypt(seq, key, payload);
  }

  /** IV: the packet index (sequence) in bytes 10-13, XORed with the salt's first 112 bits; the block counter in 14-15. */
  private counter(seq: number): Buffer {
    const iv = this.iv;
    iv.fill(0);
    iv.writeUInt32BE(seq >>> 0, 10);
    const salt = this.material.salt;
    for (let i = 0; i < 14; i++) iv[i] = iv[i]! ^ salt[i]!;
    return iv;
  }
}

function aesCtr(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = createDecipheriv(`aes-${key.length * 8}-ctr`, key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}
