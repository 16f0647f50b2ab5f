/** Who may watch what: the edge asks before serving any viewer path. */
export interface ViewerAccess {
  isKnownStream(name: string): boolean;
  /** Throws PLAYBACK_TOKEN_REQUIRED, _INVALID or _EXPIRED unless `token` lets its holder watch `stream`. */
  checkPlayback(stream: string, token: string | undefined): void;
}

/** `&token=...` for a URL the viewer is sent to, so the next hop lets it in too. */
export function tokenQuery(token: string | undefined): string {
  return token ? `&token=${encodeURIComponent(token)}` : '';
}
