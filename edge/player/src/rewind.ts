// Rewind in a live stream: the seek bar under the picture. Dragged back, the page plays the stream's recording
// (HLS from `/rewind/<stream>/`, served by the edge from storage) in a second video element, from that moment; "Live"
// (or the bar at its right end) returns to the live picture. The live path is suspended meanwhile and starts afresh.
import type Hls from 'hls.js';
import { loadHlsJs } from './hls.ts';

export interface RewindElements {
  /** The recording's picture, over the live one while rewinding. */
  video: HTMLVideoElement;
  /** The bar: the rewind window (min: seconds back; max 0: live). */
  seek: HTMLInputElement;
  label: HTMLElement;
  live: HTMLButtonElement;
  /** What holds the bar: hidden while the stream is not recorded. */
  box: HTMLElement;
}

export interface RewindOptions {
  stream: string;
  token: string | undefined;
  elements: RewindElements;
  note: (what: string) => void;
  /** Entering: the live path stops (and its picture hides). */
  suspendLive: () => void;
  /** Back to live: the live path starts again. */
  resumeLive: () => void;
  /**
   * The WebSocket path's own rewind, when it plays now: the edge sends the recording from a moment on the same socket
   * path (`?at=`), into the same video element; live again by reconnecting without it.
   */
  socket?: {
    usable(): boolean;
    rewindTo(atMs: number): void;
    live(): void;
    playingDate(): Date | undefined;
    video: HTMLVideoElement;
  };
}

export interface Rewind {
  /** Rewinding now. */
  readonly active: boolean;
  /** Seconds a viewer may go back now (the recording's playlist, within the window); 0: no rewind. */
  readonly windowS: number;
  /** Time from the last seek back to its first picture (ms). */
  readonly ttffMs: number | undefined;
  /** Wall-clock time of the picture shown while rewinding (from EXT-X-PROGRAM-DATE-TIME). */
  playingDate(): Date | undefined;
  /** Plays from `seconds` before live. */
  seekBack(seconds: number): Promise<void>;
  goLive(): void;
  destroy(): void;
}

const duration = (playlist: string) => playlist.split('\n').reduce((sum, line) => sum + (line.startsWith('#EXTINF:') ? parseFloat(line.slice(8)) : 0), 0);
const firstUri = (playlist: string) => playlist.split('\n').find((line) => line && !line.startsWith('#'));

export function createRewind(options: RewindOptions): Rewind {
  const { elements: el, note } = options;
  const q = options.token ? `?token=${encodeURIComponent(options.token)}` : '';
  const url = `/rewind/${encodeURIComponent(options.stream)}/index.m3u8${q}`;
  let hls: Hls | undefined;
  let active = false;
  let windowS = 0;
  let ttffMs: number | undefined;
  let seekAt = 0;
  let destroyed = false;
  let dragging = false;
  /** Rewinding over the WebSocket (the live path's own socket) rather than HLS in the second element. */
  let overSocket = false;

  /** The recording's media playlist now: how far back one may go. */
  async function window(): Promise<{ media: string; seconds: number } | undefined> {
    try {
      const multivariant = await fetch(url, { cache: 'no-store' });
      if (!multivariant.ok) return undefined;
      const uri = firstUri(await multivariant.text());
      if (!uri) return undefined;
      const media = new URL(uri, multivariant.url).toString();
      const res = await fetch(media, { cache: 'no-store' });
      return res.ok ? { media, seconds: duration(await res.text()) } : undefined;
    } catch {
      return undefined;
    }
  }

  async function refresh(): Promise<void> {
    const w = await window();
    if (destroyed) return;
    windowS = w ? Math.floor(w.seconds) : 0;
    el.box.hidden = windowS < 2;
    el.seek.min = String(-windowS);
    if (!active && !dragging) el.seek.value = '0';
  }

  function show(): void {
    if (!active) {
      el.label.textContent = 'LIVE';
      el.live.hidden = true;
      return;
    }
    const date = overSocket ? options.socket?.playingDate() : hls?.playingDate;
    const behind = date ? Math.max(0, (Date.now() - date.getTime()) / 1000) : -Number(el.seek.value);
    el.label.textContent = `-${Math.floor(behind / 60)}:${String(Math.floor(behind % 60)).padStart(2, '0')}`;
    if (!dragging) el.seek.value = String(-Math.round(behind));
    el.live.hidden = false;
  }

  async function seekBack(seconds: number): Promise<void> {
    if (seconds <= 0) return goLive();
    seekAt = performance.now();
    ttffMs = undefined;
    const socket = options.socket;
    if (socket && (overSocket || (!active && socket.usable()))) {
      // Over the WebSocket: the edge replays the recording from then on a new socket, into the live element.
      overSocket = true;
      active = true;
      const at = Date.now() - seconds * 1000;
      const since = seekAt;
      // The element shows live pictures until the past arrives: the first picture is the first one that old.
      const check = () => {
        if (!active || !overSocket || seekAt !== since || ttffMs !== undefined) return;
        const date = socket.playingDate();
        if (date && date.getTime() < at + 5000) ttffMs = performance.now() - seekAt;
        else socket.video.requestVideoFrameCallback?.(check);
      };
      socket.video.requestVideoFrameCallback?.(check);
      socket.rewindTo(at);
      note(`rewind: ${seconds} s back over the WebSocket`);
      show();
      return;
    }
    el.video.requestVideoFrameCallback?.(() => (ttffMs = performance.now() - seekAt));
    if (active && hls && el.video.seekable.length > 0) {
      // Already in the recording: seek in it, from its live end.
      const end = el.video.seekable.end(el.video.seekable.length - 1);
      el.video.currentTime = Math.max(el.video.seekable.start(0), end - seconds);
      note(`rewind: seek to ${seconds} s back`);
      return;
    }
    const w = await window();
    if (!w || destroyed) return;
    const HlsJs = await loadHlsJs();
    active = true;
    options.suspendLive();
    el.video.hidden = false;
    // From `seconds` before the recording's end: hls.js starts there (its timeline starts at the playlist's first segment).
    hls = new HlsJs({ startPosition: Math.max(0, w.seconds - seconds), backBufferLength: 30 });
    hls.on(HlsJs.Events.ERROR, (_event, data) => {
      if (data.fatal) note(`rewind error: ${data.type} ${data.details}`);
    });
    hls.loadSource(url);
    hls.attachMedia(el.video);
    el.video.muted = true;
    void el.video.play().catch(() => {});
    note(`rewind: ${seconds} s back`);
    show();
  }

  function goLive(): void {
    if (!active) return;
    active = false;
    if (overSocket) {
      overSocket = false;
      note('rewind: back to live');
      options.socket?.live();
      return show();
    }
    hls?.destroy();
    hls = undefined;
    el.video.hidden = true;
    el.video.removeAttribute('src');
    el.video.load();
    note('rewind: back to live');
    options.resumeLive();
    show();
  }

  const onInput = () => {
    dragging = true;
    const back = -Number(el.seek.value);
    el.label.textContent = back === 0 ? 'LIVE' : `-${Math.floor(back / 60)}:${String(back % 60).padStart(2, '0')}`;
  };
  const onChange = () => {
    dragging = false;
    void seekBack(-Number(el.seek.value));
  };
  const onLive = () => goLive();
  el.seek.addEventListener('input', onInput);
  el.seek.addEventListener('change', onChange);
  el.live.addEventListener('click', onLive);
  // The window grows a segment (4 s) at a time: its length is read again every 10 s.
  const timers = [setInterval(() => void refresh(), 10_000), setInterval(show, 500)];
  void refresh();

  return {
    get active() {
      return active;
    },
    get windowS() {
      return windowS;
    },
    get ttffMs() {
      return ttffMs;
    },
    playingDate: () => (overSocket ? options.socket?.playingDate() : (hls?.playingDate ?? undefined)),
    seekBack,
    goLive,
    destroy() {
      destroyed = true;
      for (const t of timers) clearInterval(t);
      el.seek.removeEventListener('input', onInput);
      el.seek.removeEventListener('change', onChange);
      el.live.removeEventListener('click', onLive);
      hls?.destroy();
    },
  };
}
