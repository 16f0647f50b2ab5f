import { createHmac, timingSafeEqual } from 'node:crypto';
import { isStreamName } from '../media/stream-name.ts';

/**
 * Signed publish keys and playback tokens: what a platform's backend hands a
 * streamer or a viewer without telling the relay first. Both are an expiry and an
 * HMAC-SHA256 over what they allow, so they are bound to one stream and one purpose:
 *
 *   signature     = base64url(HMAC-SHA256(secret, "relay-v1:<purpose>:<stream>:<expiresAt>"))
 *   publish key   = <stream>.<expiresAt>.<signature>      (the RTMP stream key or WHIP bearer token)
 *   playback token = <expiresAt>.<signature>              (?token= on the watch page, WebSocket, WHEP)
 *
 * `expiresAt` is Unix time in seconds. Stream names have no dots, so the fields split
 * without ambiguity. Several secrets may be valid at once: that is how they rotate.
 */
export type SignedPurpose = 'publish' | 'play';

export type Verdict = 'valid' | 'expired' | 'invalid';

const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const EXPIRY = /^[0-9]{1,12}$/;

export function signature(secret: string, purpose: SignedPurpose, stream: string, expiresAt: number): string {
  return createHmac('sha256', secret).update(`relay-v1:${purpose}:${stream}:${expiresAt}`).digest('base64url');
}

export function signPublishKey(secret: string, stream: string, expiresAt: number): string {
  return `${stream}.${expiresAt}.${signature(secret, 'publish', stream, expiresAt)}`;
}

export function signPlaybackToken(secret: string, stream: string, expiresAt: number): string {
  return `${expiresAt}.${signature(secret, 'play', stream, expiresAt)}`;
}

/** The parts of something shaped like a signed publish key, or undefined. Says nothing of its validity. */
export function parsePublishKey(key: string): { stream: string; expiresAt: number; sig: string } | undefined {
  const parts = key.split('.');
  if (parts.length !== 3) return undefined;
  const [stream, expiry, sig] = parts as [string, string, string];
  if (!isStreamName(stream) || !EXPIRY.test(expiry) || !SIGNATURE.test(sig)) return undefined;
  return { stream, expiresAt: Number(expiry), sig };
}

/**
 * Checks a signature against every current secret (in constant time each), then
 * the expiry: a forged key is `invalid` whatever its expiry says.
 */
export function verifySigned(secrets: readonly string[], purpose: SignedPurpose, stream: string, expiresAt: number, sig: string, nowMs: number): Verdict {
  if (!SIGNATURE.test(sig)) return 'invalid';
  // Compared as text, not decoded: base64url has several spellings of the same bytes.
  const given = Buffer.from(sig, 'latin1');
  let matched = false;
  for (const secret of secrets) {
    if (timingSafeEqual(Buffer.from(signature(secret, purpose, stream, expiresAt), 'latin1'), given)) matched = true;
  }
  if (!matched) return 'invalid';
  return expiresAt * 1000 > nowMs ? 'valid' : 'expired';
}

/** A playback token for `stream`: valid, expired or invalid (malformed included). */
export function verifyPlaybackToken(secrets: readonly string[], stream: string, token: string, nowMs: number): Verdict {
  const dot = token.indexOf('.');
  const expiry = token.slice(0, dot);
  if (dot < 0 || !EXPIRY.test(expiry)) return 'invalid';
  return verifySigned(secrets, 'play', stream, Number(expiry), token.slice(dot + 1), nowMs);
}
