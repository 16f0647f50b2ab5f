// A recording's HLS playlists, pure: what was stored in, playlist text out (RFC 8216bis). While the stream is live
// the media playlist is an EVENT playlist (segments only ever added); at the end it becomes VOD with EXT-X-ENDLIST.
// Each version is complete and valid by itself, so a playlist read at any moment (or left by a crash) plays.

/** What a playlist needs of a stored segment. */
export interface PlaylistSegment {
  index: number;
  initId: number;
  discontinuity: boolean;
  duration: number;
  programDateTime: number;
}

export const segmentFile = (index: number) => `${String(index).padStart(6, '0')}.m4s`;
export const initFile = (id: number) => `init-${id}.mp4`;

const s5 = (seconds: number) => seconds.toFixed(5);

export interface MediaPlaylistOptions {
  /**
   * Only the segments within this many seconds of the end (a live stream's rewind window): a sliding playlist, with
   * no PLAYLIST-TYPE, its media and discontinuity sequences counting what it dropped. 0 or absent: every segment.
   */
  windowS?: number;
  /** Appended to every URI (`?token=...`): media requests carry what the playlist request did. */
  query?: string;
}

/** A rendition's media playlist: EVENT while `ended` is false, VOD after (or a sliding window of it). */
export function mediaPlaylist(all: readonly PlaylistSegment[], ended: boolean, options: MediaPlaylistOptions = {}): string {
  const q = options.query ?? '';
  let first = 0;
  if (options.windowS && options.windowS > 0) {
    let fromEnd = 0;
    first = all.length;
    while (first > 0 && fromEnd + all[first - 1]!.duration <= options.windowS + 1e-6) fromEnd += all[--first]!.duration;
    first = Math.min(first, Math.max(0, all.length - 1)); // at least the last segment
  }
  const segments = all.slice(first);
  let dropped = 0;
  for (let i = 1; i <= first && i < all.length; i++) if (all[i]!.discontinuity) dropped++;
  let longest = 1;
  for (const s of segments) longest = Math.max(longest, Math.round(s.duration));
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', `#EXT-X-TARGETDURATION:${longest}`];
  if (first === 0) lines.push(`#EXT-X-PLAYLIST-TYPE:${ended ? 'VOD' : 'EVENT'}`);
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${segments[0]?.index ?? 0}`);
  if (dropped > 0) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${dropped}`);
  lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  let initId = 0;
  for (const [i, s] of segments.entries()) {
    // The first listed segment's discontinuity is counted in EXT-X-DISCONTINUITY-SEQUENCE already.
    if (s.discontinuity && i > 0) lines.push('#EXT-X-DISCONTINUITY');
    if (s.initId !== initId) {
      initId = s.initId;
      lines.push(`#EXT-X-MAP:URI="${initFile(initId)}${q}"`);
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
    lines.push(`#EXTINF:${s5(s.duration)},`, `${segmentFile(s.index)}${q}`);
  }
  if (ended) lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

export interface VariantEntry {
  rendition: string;
  /** Peak bits per second over its segments. */
  bandwidth: number;
  averageBandwidth: number;
  codecs: string;
  width?: number | undefined;
  height?: number | undefined;
}

/** The recording's multivariant playlist: one entry per recorded rendition, highest first. `prefix` goes before each URI, `query` after. */
export function multivariantPlaylist(variants: readonly VariantEntry[], prefix = '', query = ''): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of variants) {
    const attrs = [
      `BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`,
      `AVERAGE-BANDWIDTH=${Math.max(1, Math.round(v.averageBandwidth))}`,
      `CODECS="${v.codecs}"`,
    ];
    if (v.width && v.height) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, `${prefix}${v.rendition}/index.m3u8${query}`);
  }
  return lines.join('\n') + '\n';
}
