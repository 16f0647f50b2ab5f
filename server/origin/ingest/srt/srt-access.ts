import { RelayError, type ErrorCode } from '../../../core/errors.ts';
import { SrtReject } from './srt-handshake.ts';

export interface SrtPublishRequest {
  /** The publish key (secret: never logged). */
  key: string;
  /** The stream the caller names besides its key (`r` when the key is in `s`), to check against the key's. */
  stream?: string;
}

/**
 * The publish key in an SRT stream id (libsrt's access control, docs/features/access-control.md):
 * - a plain stream id is the key: `srt://host:8890?streamid=<key>`;
 * - `#!::r=<key>,m=publish`: the key as the resource name, as RTMP's stream key;
 * - `#!::r=<stream>,s=<key>,m=publish`: the stream by name and the key as the session id.
 *
 * In the `#!::` form the mode defaults to `request` (a caller that wants to receive), which
 * this relay does not serve: publishers say `m=publish`. Throws SRT_STREAMID_INVALID or
 * SRT_MODE_UNSUPPORTED.
 */
export function readStreamId(streamId: string): SrtPublishRequest {
  if (streamId === '') throw new RelayError('SRT_STREAMID_INVALID', 'the stream id is empty');
  if (!streamId.startsWith('#!::')) return { key: streamId };
  const fields = new Map<string, string>();
  for (const part of streamId.slice(4).split(',')) {
    const eq = part.indexOf('=');
    // The field itself is not repeated: it may be a key written in the wrong place, and refusals are logged.
    if (eq <= 0) throw new RelayError('SRT_STREAMID_INVALID', 'a field that is not key=value');
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const mode = fields.get('m') ?? 'request';
  if (mode !== 'publish') throw new RelayError('SRT_MODE_UNSUPPORTED', `m=${mode.slice(0, 32)}`);
  const session = fields.get('s');
  const resource = fields.get('r');
  if (session) return { key: session, ...(resource && { stream: resource }) };
  if (resource) return { key: resource };
  throw new RelayError('SRT_STREAMID_INVALID', 'no r= (or s=) field');
}

/**
 * The SRT rejection reason a refusal goes back with: an access-control code (1400-1503) or a
 * handshake reason (5, 10, 11), one per relay code, so that what the encoder shows names it
 * (the README has the table). Anything else is 1500 (the relay's log says which).
 */
export function srtRejectionOf(code: ErrorCode): number {
  return SRT_REJECTIONS[code] ?? SrtReject.ISE;
}

const SRT_REJECTIONS: Partial<Record<ErrorCode, number>> = {
  SRT_STREAMID_INVALID: SrtReject.BAD_REQUEST,
  STREAM_KEY_EXPIRED: SrtReject.UNAUTHORIZED,
  TOO_MANY_CONNECTIONS: SrtReject.OVERLOAD,
  STREAM_KEY_INVALID: SrtReject.FORBIDDEN,
  SRT_MODE_UNSUPPORTED: SrtReject.BAD_MODE,
  STREAM_ALREADY_PUBLISHING: SrtReject.CONFLICT,
  ORIGIN_SHUTTING_DOWN: SrtReject.DOWN,
  SRT_TOO_MANY_CONNECTIONS: SrtReject.BACKLOG,
  SRT_PASSPHRASE_INVALID: SrtReject.BADSECRET,
  SRT_ENCRYPTION_MISMATCH: SrtReject.UNSECURE,
};

/** The relay code of a refusal the handshake itself decided (by libsrt's reason). */
export function codeOfHandshakeRefusal(reason: number): ErrorCode {
  if (reason === SrtReject.BADSECRET) return 'SRT_PASSPHRASE_INVALID';
  if (reason === SrtReject.UNSECURE) return 'SRT_ENCRYPTION_MISMATCH';
  if (reason === SrtReject.BAD_REQUEST) return 'SRT_STREAMID_INVALID';
  return 'SRT_HANDSHAKE_UNSUPPORTED';
}
