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

/** A rendition's media playlist: EVENT while `ended` is false, VOD after. */
export function mediaPlaylist(segments: readonly PlaylistSegment[], ended: boolean): string {
  let longest = 1;
  for (const s of segments) longest = Math.max(longest, Math.round(s.duration));
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${longest}`,
    `#EXT-X-PLAYLIST-TYPE:${ended ? 'VOD' : 'EVENT'}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-INDEPENDENT-SEGMENTS',
  ];
  let initId = 0;
  for (const [i, s] of segments.entries()) {
    if (s.discontinuity && i > 0) lines.push('#EXT-X-DISCONTINUITY');
    if (s.initId !== initId) {
      initId = s.initId;
      lines.push(`#EXT-X-MAP:URI="${initFile(initId)}"`);
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
    lines.push(`#EXTINF:${s5(s.duration)},`, segmentFile(s.index));
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

/** The recording's multivariant playlist: one entry per recorded rendition, highest first. */
export function multivariantPlaylist(variants: readonly VariantEntry[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of variants) {
    const attrs = [
      `BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`,
      `AVERAGE-BANDWIDTH=${Math.max(1, Math.round(v.averageBandwidth))}`,
      `CODECS="${v.codecs}"`,
    ];
    if (v.width && v.height) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, `${v.rendition}/index.m3u8`);
  }
  return lines.join('\n') + '\n';
}
