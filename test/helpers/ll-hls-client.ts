/** A client of one media playlist that runs until stopped. */
abstract class PlaylistClient {
  protected stopped = false;
  private readonly done: Promise<void>;

  /** `media`: the media playlist's URL (its query, e.g. a token, is kept). */
  constructor(protected readonly media: string) {
    // Once the subclass's fields exist.
    this.done = Promise.resolve().then(() => this.run());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  protected abstract run(): Promise<void>;
}

/**
 * A client that does what hls.js does in low-latency mode, and nothing else: a
 * blocking playlist request for the next part (`_HLS_msn`/`_HLS_part`), then that
 * part. Many of them in one process stand for many viewers (the CDN test, the HLS
 * delivery benchmark).
 */
export class LlHlsClient extends PlaylistClient {
  readonly stats = { playlists: 0, parts: 0, bytes: 0, errors: 0 };

  private url(msn: number, part: number): string {
    const u = new URL(this.media);
    u.searchParams.set('_HLS_msn', String(msn));
    u.searchParams.set('_HLS_part', String(part));
    return u.toString();
  }

  protected async run(): Promise<void> {
    let next: [number, number] | undefined;
    while (!this.stopped) {
      try {
        const res = await fetch(next ? this.url(...next) : this.media);
        const text = await res.text();
        this.stats.playlists++;
        if (!res.ok) throw new Error(`playlist ${res.status}`);
        // Every part listed, in order, and the hinted one after them.
        const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]*?(\d+)\.(\d+)\.m4s[^"]*)"/g)].map((m) => ({
          uri: m[1]!,
          msn: Number(m[2]),
          part: Number(m[3]),
        }));
        const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*?(\d+)\.(\d+)\.m4s/.exec(text);
        const at = next ? parts.findIndex((p) => p.msn === next![0] && p.part === next![1]) : parts.length - 1;
        const got = parts[at];
        if (got) {
          const partRes = await fetch(new URL(got.uri, this.media));
          const body = await partRes.arrayBuffer();
          if (!partRes.ok) throw new Error(`part ${partRes.status}`);
          this.stats.parts++;
          this.stats.bytes += body.byteLength;
        }
        const after = parts[at + 1];
        next = after ? [after.msn, after.part] : hint ? [Number(hint[1]), Number(hint[2])] : undefined;
        if (text.includes('#EXT-X-ENDLIST')) return;
      } catch {
        this.stats.errors++;
        next = undefined;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
}

/**
 * A classic HLS client (RFC 8216, no low-latency tags): reloads the playlist every
 * half target duration and fetches each segment it has not had yet, starting at the
 * newest. What a player that ignores parts does; the HLS benchmark's clients for
 * servers without LL-HLS.
 */
export class HlsClient extends PlaylistClient {
  readonly stats = { playlists: 0, segments: 0, bytes: 0, errors: 0 };

  protected async run(): Promise<void> {
    let nextMsn: number | undefined;
    while (!this.stopped) {
      let wait = 500;
      try {
        const res = await fetch(this.media);
        const text = await res.text();
        this.stats.playlists++;
        if (!res.ok) throw new Error(`playlist ${res.status}`);
        const target = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? 2);
        wait = (target * 1000) / 2;
        let msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
        const segments = [...text.matchAll(/#EXTINF:[^\n]*\n([^#\n][^\n]*)/g)].map((m) => ({ msn: msn++, uri: m[1]!.trim() }));
        nextMsn ??= segments.at(-1)?.msn;
        for (const s of segments) {
          if (nextMsn === undefined || s.msn < nextMsn || this.stopped) continue;
          const segmentRes = await fetch(new URL(s.uri, this.media));
          const body = await segmentRes.arrayBuffer();
          if (!segmentRes.ok) throw new Error(`segment ${segmentRes.status}`);
          this.stats.segments++;
          this.stats.bytes += body.byteLength;
          nextMsn = s.msn + 1;
        }
        if (text.includes('#EXT-X-ENDLIST')) return;
      } catch {
        this.stats.errors++;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
