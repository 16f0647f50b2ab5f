// HLS playback: hls.js in low-latency mode over MediaSource, or the browser's own HLS
// (Safari) where it has no MediaSource to give hls.js. hls.js is not in the player's
// bundle: the page loads it (/player/hls.js, served from the npm dependency) only to
// play HLS.
import type Hls from 'hls.js';

type HlsClass = typeof Hls;

export interface HlsSession {
  /** hls.js, when it plays (undefined with the browser's own HLS). */
  hls: Hls | undefined;
  /** Wall-clock time of the frame on screen, from EXT-X-PROGRAM-DATE-TIME (the ingest clock). */
  playingDate(): Date | undefined;
  /** Ingest wall-clock time (ms since the epoch) of the picture at media time `t` (s), from EXT-X-PROGRAM-DATE-TIME. */
  wallClockAt(t: number): number | undefined;
  destroy(): void;
}

export interface HlsOptions {
  url: string;
  video: HTMLVideoElement;
  note: (what: string) => void;
  /** The browser's own HLS player wherever it has one, not only where there is no MediaSource. */
  native: boolean;
  /** The first frames are buffered: the page may say live. */
  playing: () => void;
  /** Something failed for good (after hls.js's own retries). */
  failed: (why: string) => void;
  /** The playlist playing has ended (EXT-X-ENDLIST): HLS players read it no more. */
  ended: () => void;
}

const hasMediaSource = () => 'MediaSource' in window || 'ManagedMediaSource' in window;

export function loadHlsJs(): Promise<HlsClass> {
  const w = window as { Hls?: HlsClass };
  if (w.Hls) return Promise.resolve(w.Hls);
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/player/hls.js';
    script.onload = () => (w.Hls ? resolve(w.Hls) : reject(new Error('hls.js did not load')));
    script.onerror = () => reject(new Error('cannot load /player/hls.js'));
    document.head.append(script);
  });
}

export async function startHls({ url, video, native, note, playing, failed, ended }: HlsOptions): Promise<HlsSession> {
  if ((native || !hasMediaSource()) && video.canPlayType('application/vnd.apple.mpegurl')) {
    note('hls: native');
    video.src = url;
    video.addEventListener('loadeddata', playing, { once: true });
    video.addEventListener('ended', ended, { once: true });
    const getStartDate = (video as { getStartDate?: () => Date }).getStartDate;
    const playingDate = () => {
      const start = getStartDate?.call(video);
      return start && !Number.isNaN(start.getTime()) ? new Date(start.getTime() + video.currentTime * 1000) : undefined;
    };
    return {
      hls: undefined,
      playingDate,
      wallClockAt: (t) => wallClockAt(playingDate, video, t),
      destroy: () => {
        video.removeAttribute('src');
        video.load();
      },
    };
  }
  const HlsJs = await loadHlsJs();
  if (!HlsJs.isSupported()) throw new Error('hls.js is not supported here');
  note('hls: hls.js');
  // No liveSyncDuration(Count): set, either one overrides PART-HOLD-BACK as hls.js's target latency (a segment,
  // 2 s, instead of three parts, 1 s). Behind the target after a stall, play a little faster to come back.
  const hls = new HlsJs({ lowLatencyMode: true, backBufferLength: 20, maxLiveSyncPlaybackRate: 1.25 });
  hls.on(HlsJs.Events.MANIFEST_PARSED, () => note(`hls: ${hls.levels.length} levels`));
  hls.on(HlsJs.Events.FRAG_BUFFERED, () => playing());
  hls.on(HlsJs.Events.LEVEL_LOADED, (_event, data) => {
    if (!data.details.live) ended();
  });
  hls.on(HlsJs.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    note(`hls error: ${data.type} ${data.details}`);
    if (data.type === HlsJs.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else if (data.type === HlsJs.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.startLoad(), 1000);
    else failed(`${data.type}: ${data.details}`);
  });
  const unhold = holdStartSeek(hls, HlsJs, video, note);
  hls.loadSource(url);
  hls.attachMedia(video);
  const playingDate = () => hls.playingDate ?? undefined;
  return {
    hls,
    playingDate,
    wallClockAt: (t) => wallClockAt(playingDate, video, t),
    destroy: () => {
      unhold();
      hls.destroy();
    },
  };
}

/** The date at the playhead, moved to media time `t`: segments are continuous in time, so the offset holds near the playhead. */
function wallClockAt(playingDate: () => Date | undefined, video: HTMLVideoElement, t: number): number | undefined {
  const date = playingDate();
  return date && date.getTime() + (t - video.currentTime) * 1000;
}

/**
 * WebKitGTK and WPE (WebKit on Linux: GStreamer under MSE). Safari on Apple systems plays MSE through AVFoundation.
 */
const gstreamerWebKit = (ua: string) => /AppleWebKit/.test(ua) && /Linux/.test(ua) && !/Chrome|Chromium|Android/.test(ua);

/**
 * Holds hls.js's seek to its start position (live edge minus PART-HOLD-BACK, just after the first part is buffered)
 * until 250 ms after the first append, in WebKit on GStreamer only. WebKitGTK 2.50 links its pipeline's pads right
 * after the first media, and a seek then hung its web process (every time here with a fresh browser). The element
 * reads the held position meanwhile, so that hls.js sees the seek it asked for. Returns the undo.
 */
function holdStartSeek(hls: Hls, HlsJs: HlsClass, video: HTMLVideoElement, note: (what: string) => void): () => void {
  if (!gstreamerWebKit(navigator.userAgent)) return () => {};
  const own = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'currentTime')!;
  let firstAppend: number | undefined;
  let held: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const undo = () => {
    clearTimeout(timer);
    delete (video as { currentTime?: number }).currentTime; // the prototype's accessor again
  };
  Object.defineProperty(video, 'currentTime', {
    configurable: true,
    get: () => held ?? (own.get!.call(video) as number),
    set: (t: number) => {
      if (firstAppend !== undefined && performance.now() - firstAppend < 250) held = t;
      else own.set!.call(video, t);
    },
  });
  hls.once(HlsJs.Events.BUFFER_APPENDED, () => {
    firstAppend = performance.now();
    timer = setTimeout(() => {
      undo();
      if (held === undefined) return;
      note(`hls: start seek to ${held.toFixed(3)} held 250 ms (WebKit on GStreamer)`);
      video.currentTime = held;
      held = undefined;
    }, 250);
  });
  return undo;
}
