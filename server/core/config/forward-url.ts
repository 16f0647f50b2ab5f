/** Where a stream is forwarded (restreamed): another RTMP server (YouTube, Twitch, a CDN), over TLS, or an SRT listener. */
export interface ForwardTarget {
  /** The URL as configured: it holds the target's stream key, so it is never logged or shown. */
  url: string;
  /** The same URL with its secrets (the RTMP stream key, SRT's stream id and passphrase) replaced by `***`. */
  shown: string;
  /** What ffmpeg writes to it: FLV for RTMP(S), MPEG-TS for SRT. */
  container: 'flv' | 'mpegts';
}

/** SRT URL parameters that are secrets: hidden wherever the URL is shown. */
export const SRT_SECRETS = new Set(['streamid', 'passphrase']);

/**
 * A forward URL read and checked: `rtmp://host[:port]/app/key`, `rtmps://...` or `srt://host:port[?streamid=...]`.
 * Returns a reason instead when it is not one (the configuration schema shows it).
 */
export function parseForwardUrl(text: string): ForwardTarget | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (!url.hostname) return 'no host';
  // A fragment never leaves ffmpeg, and would keep a secret out of the redaction: SRT's "#!::" stream ids are written %23!::.
  if (url.hash || text.includes('#')) return 'a # in a URL starts a fragment: write it as %23 (an SRT stream id #!::r=... is %23!::r=...)';
  if (url.protocol === 'rtmp:' || url.protocol === 'rtmps:') {
    const path = url.pathname.split('/').filter(Boolean);
    if (path.length < 2) return 'an RTMP URL names an application and a stream key: rtmp://host/app/key';
    const shown = `${url.protocol}//${url.host}/${path.slice(0, -1).join('/')}/***${url.search ? '?***' : ''}`;
    return { url: text, shown, container: 'flv' };
  }
  if (url.protocol === 'srt:') {
    if (!url.port) return 'an SRT URL names its port: srt://host:port?streamid=...';
    const query = [...url.searchParams].map(([k, v]) => `${k}=${SRT_SECRETS.has(k) ? '***' : v}`).join('&');
    return { url: text, shown: `srt://${url.host}${query ? `?${query}` : ''}`, container: 'mpegts' };
  }
  return `${url.protocol.replace(/:$/, '')} is not a forward protocol (rtmp, rtmps or srt)`;
}
