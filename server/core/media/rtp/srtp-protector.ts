import { createCipheriv, createHmac } from 'node:crypto';

/** The SRTP protection profiles a browser negotiates over DTLS (RFC 7714, RFC 3711). */
export type SrtpProfile = 'aead-aes-128-gcm' | 'aes128-cm-hmac-sha1-80';

/** One direction's session keys, derived from the DTLS master keys (RFC 3711 section 4.3). */
export interface SrtpSessionKeys {
  profile: SrtpProfile;
  /** AES-128 session encryption key. */
  key: Buffer;
  /** Session salt: 12 bytes for GCM, 14 for AES-CM. */
  salt: Buffer;
  /** HMAC-SHA1 session authentication key (AES-CM only). */
  authKey?: Buffer;
}

export const RTP_HEADER_BYTES = 12;

/** Writes a 12-byte RTP header (no CSRC, no extension) into `out`. */
export function writeRtpHeader(out: Buffer, payloadType: number, marker: boolean, sequenceNumber: number, timestamp: number, ssrc: number): Buffer {
  out[0] = 0x80;
  out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  out.writeUInt16BE(sequenceNumber & 0xffff, 2);
  out.writeUInt32BE(timestamp >>> 0, 4);
  out.writeUInt32BE(ssrc >>> 0, 8);
  return out;
}

/**
 * SRTP protection of outgoing RTP, pure: header and payload in, the packet's three
 * parts out (header, encrypted payload, authentication tag), ready for one
 * scatter-gather datagram without a copy into a joined buffer. One protector per
 * session direction; the caller keeps each SSRC's rollover counter. The one
 * per-packet cost that cannot be shared between viewers, so it does only what the
 * RFCs require: one cipher per packet, no header objects, no concatenation.
 */
export class SrtpProtector {
  /** Reused IV scratch (createCipheriv copies it). */
  private readonly iv: Buffer;
  private readonly roc = Buffer.alloc(4);

  constructor(private readonly keys: SrtpSessionKeys) {
    if (keys.key.length !== 16) throw new Error('SRTP: a 16-byte AES-128 key is required');
    if (keys.profile === 'aead-aes-128-gcm') {
      if (keys.salt.length !== 12) throw new Error('SRTP GCM: a 12-byte salt is required');
      this.iv = Buffer.alloc(12);
    } else {
      if (keys.salt.length !== 14 || !keys.authKey) throw new Error('SRTP AES-CM: a 14-byte salt and an authentication key are required');
      this.iv = Buffer.alloc(16);
    }
  }

  /** Protects one packet. `header` is the 12-byte RTP header (its SSRC and sequence number are read from it). */
  protect(header: Buffer, payload: Buffer, rolloverCounter: number): [Buffer, Buffer, Buffer] {
    const ssrc = header.readUInt32BE(8);
    const seq = header.readUInt16BE(2);
    const iv = this.iv;
    const salt = this.keys.salt;
    if (this.keys.profile === 'aead-aes-128-gcm') {
      // RFC 7714 section 8.1: (00 00 || SSRC || ROC || SEQ) XOR salt.
      iv[0] = 0;
      iv[1] = 0;
      iv.writeUInt32BE(ssrc, 2);
      iv.writeUInt32BE(rolloverCounter >>> 0, 6);
      iv.writeUInt16BE(seq, 10);
      for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
      const cipher = createCipheriv('aes-128-gcm', this.keys.key, iv);
      cipher.setAAD(header);
      const encrypted = cipher.update(payload);
      cipher.final();
      return [header, encrypted, cipher.getAuthTag()];
    }
    // RFC 3711 section 4.1.1: (salt << 16) XOR (SSRC << 64) XOR (index << 16).
    iv.fill(0);
    iv.writeUInt32BE(ssrc, 4);
    iv.writeUInt32BE(rolloverCounter >>> 0, 8);
    iv.writeUInt16BE(seq, 12);
    for (let i = 0; i < 14; i++) iv[i]! ^= salt[i]!;
    const encrypted = createCipheriv('aes-128-ctr', this.keys.key, iv).update(payload);
    this.roc.writeUInt32BE(rolloverCounter >>> 0, 0);
    const tag = createHmac('sha1', this.keys.authKey!).update(header).update(encrypted).update(this.roc).digest().subarray(0, 10);
    return [header, encrypted, tag];
  }
}
