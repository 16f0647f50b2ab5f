import { RelayError } from '../errors.ts';

/**
 * Public stream names end up in NATS subjects, URLs and metric labels, so the
 * alphabet is closed: no dots (subject tokens), no `*` or `>` (wildcards), no
 * spaces, no unicode.
 */
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function isStreamName(value: unknown): value is string {
  return typeof value === 'string' && STREAM_NAME.test(value);
}

export function assertStreamName(value: unknown): string {
  if (!isStreamName(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
    throw new RelayError('STREAM_NAME_INVALID', `got ${shown}`);
  }
  return value;
}

/** Rendition names (`source`, `720p`, ...): one subject token, lowercase. */
const RENDITION_NAME = /^[a-z0-9_-]{1,32}$/;

export function isRenditionName(value: unknown): value is string {
  return typeof value === 'string' && RENDITION_NAME.test(value);
}
