import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Fragment } from '../../../server/core/media/mp4/fmp4-muxer.ts';
import type { RenditionState } from '../../protocol.ts';
import type { Egress, MuxedInit, RenditionView } from '../egress.ts';
import { LlHlsPlaylist, type LlHlsOptions } from './ll-hls-playlist.ts';

export interface HlsEgressOptions extends LlHlsOptions {
  /** A client that asked for nothing for this long is no longer a viewer. */
  sessionIdleMs: number;
}

/** A playlist's text, made once and sent to every client asking the same question; compressed on first demand. */
export class RenderedPlaylist {
  readonly body: Buffer;
  private compressed: Buffer | null | undefined;

  constructor(text: string) {
    this.body = Buffer.from(text);
  }

  /** gzip, or undefined when too small to be worth it. */
  gzip(): Buffer | undefined {
    if (this.compressed === undefined) this.compressed = this.body.length > 512 ? gzipSync(this.body, { level: 4 }) : null;
    return this.compressed ?? undefined;
  }
}

interface Waiter {
  ready: () => boolean;
  resolve: (ok: boolean) => void;
  timer: NodeJS.Timeout;
}

/**
 * LL-HLS viewers of one rendition. HLS has no connection per viewer: the egress
 * makes its playlist on the first request (from the rendition's init and cached
 * GOP, so the first answer comes at once), keeps it while clients ask, and drops it
 * when they stop. Parts and segments are the muxer's fragments, concatenated once
 * and shared by every request. Blocked requests (`_HLS_msn`, a hinted part) wait on
 * `waitFor` and are woken by each change.
 */
export class HlsEgress implements Egress {
  readonly protocol = 'hls';
  private playlistNow: LlHlsPlaylist | undefined;
  /** Client -> when it last asked (performance.now() ms). */
  private readonly sessions = new Map<string, number>();
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  /** Playlist texts of the current playlist version, by what varies between clients (skip, token, reports). */
  private readonly renders = new Map<string, RenderedPlaylist>();
  private rendersVersion = -1;

  constructor(
    private readonly view: RenditionView,
    private readonly options: HlsEgressOptions,
  ) {}

  get viewerCount(): number {
    return this.sessions.size;
  }

  /** Requests waiting for a part or a playlist update. */
  get blocked(): number {
    return this.waiters.size;
  }

  /** The playlist, made on first use from what the rendition has now. */
  playlist(): LlHlsPlaylist | undefined {
    if (this.closed) return undefined;
    if (!this.playlistNow) {
      const playlist = new LlHlsPlaylist({ ...this.options, gopS: this.view.gopSeconds }, `${randomBytes(4).toString('hex')}-`);
      const { init, gop } = this.view;
      if (init) {
        playlist.init(init.segment);
        for (const fragment of gop) playlist.push(fragment);
        if (this.view.state === 'ended') playlist.end();
      }
      this.playlistNow = playlist;
    }
    return this.playlistNow;
  }

  /** The playlist's text for `key`, rendered once per playlist version; a few keys at most are kept (tokens differ per viewer). */
  rendered(key: string, render: () => string): RenderedPlaylist {
    const version = this.playlistNow?.version ?? -1;
    if (version !== this.rendersVersion) {
      this.renders.clear();
      this.rendersVersion = version;
    }
    let r = this.renders.get(key);
    if (!r) {
      r = new RenderedPlaylist(render());
      if (this.renders.size >= 16) this.renders.clear();
      this.renders.set(key, r);
    }
    return r;
  }

  /** A client asked for something: it counts as a viewer until it has been idle for `sessionIdleMs`. */
  seen(client: string, now = performance.now()): void {
    this.sessions.set(client, now);
  }

  /** Resolves true once `ready()` holds (checked on every change), false after `timeoutMs` or when the egress closes. */
  waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        ready,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  init(init: MuxedInit): void {
    if (!this.playlistNow) return;
    this.playlistNow.init(init.segment);
    this.wake();
  }

  fragment(fragment: Fragment): void {
    const playlist = this.playlistNow;
    if (!playlist) return;
    const version = playlist.version;
    playlist.push(fragment);
    if (playlist.version !== version) this.wake();
  }

  state(state: RenditionState): void {
    if (state === 'ended' && this.playlistNow && !this.playlistNow.ended) {
      this.playlistNow.end();
      this.wake();
    }
  }

  /** Once a second: clients gone quiet stop counting; with none left the playlist goes (and the rendition may close). */
  housekeep(now: number): void {
    if (this.sessions.size === 0) return;
    for (const [client, at] of this.sessions) if (now - at > this.options.sessionIdleMs) this.sessions.delete(client);
    if (this.sessions.size === 0 && this.waiters.size === 0) {
      this.playlistNow = undefined;
      this.renders.clear();
      this.view.viewerLeft();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.waiters.clear();
    this.sessions.clear();
    this.renders.clear();
    this.playlistNow = undefined;
  }

  private wake(): void {
    for (const w of this.waiters) {
      if (!w.ready()) continue;
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.resolve(true);
    }
  }
}
