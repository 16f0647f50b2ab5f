import { RelayError } from '../errors.ts';
import { isRenditionName, isStreamName } from '../media/stream-name.ts';

/** Who may watch what (AccessKeys implements it). */
export interface ViewerAccess {
  isKnownStream(name: string): boolean;
  /** Throws PLAYBACK_TOKEN_REQUIRED, _INVALID or _EXPIRED unless `token` lets its holder watch `stream`. */
  checkPlayback(stream: string, token: string | undefined): void;
}

export interface ViewerRequest {
  stream: string;
  rendition?: string;
  /** The playback token, from `?token=` or `Authorization: Bearer`. */
  token?: string | undefined;
}

/**
 * The one check every viewer path makes before it serves anything (the watch
 * page, WebSocket, WHEP, the route and stream APIs): the stream's name, that it is
 * configured, the rendition's name, and, unless `playback` is false (public
 * information such as a route), the playback token. Throws the RelayError to refuse with.
 */
export function admitViewer(access: ViewerAccess, request: ViewerRequest, { playback = true } = {}): void {
  const { stream, rendition, token } = request;
  if (!isStreamName(stream)) throw new RelayError('STREAM_NAME_INVALID', `got ${JSON.stringify(String(stream).slice(0, 80))}`);
  if (rendition !== undefined && !isRenditionName(rendition))
    throw new RelayError('STREAM_NAME_INVALID', `rendition ${JSON.stringify(String(rendition).slice(0, 40))}`);
  if (!access.isKnownStream(stream)) throw new RelayError('STREAM_UNKNOWN', stream);
  if (playback) access.checkPlayback(stream, token);
}

/** `&token=...` for a URL the viewer is sent to, so that the next hop lets it in too. */
export function tokenQuery(token: string | undefined): string {
  return token ? `&token=${encodeURIComponent(token)}` : '';
}
