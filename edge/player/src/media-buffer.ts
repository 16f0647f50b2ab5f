// Buffer control: one MediaSource and SourceBuffer, the queue of what waits to be
// appended, and trimming what is far behind the playhead.

/** Buffer kept behind the playhead (s). */
const KEEP_BEHIND_S = 20;
const MediaSourceImpl: typeof MediaSource | undefined =
  (window as { ManagedMediaSource?: typeof MediaSource }).ManagedMediaSource ?? (window as { MediaSource?: typeof MediaSource }).MediaSource;

/** Whether this browser's MediaSource decodes `mime` (HEVC and AV1 sources are not decoded everywhere). */
export const canPlay = (mime: string): boolean => MediaSourceImpl?.isTypeSupported(mime) ?? false;

/** The MSE type of a rendition from the API. */
export const renditionMime = (r: { codecs: string; tracks?: string }): string => `${r.tracks === 'audio' ? 'audio' : 'video'}/mp4; codecs="${r.codecs}"`;

/**
 * A queue entry: media, or a step of a rendition switch: remove the old
 * rendition's frames from a time on, or change the codec.
 */
export type QueueItem = ArrayBuffer | { removeFrom: number } | { changeType: string };

const isStep = (q: QueueItem): q is { removeFrom: number } | { changeType: string } => !(q instanceof ArrayBuffer);

export interface MediaBufferHooks {
  /** Something went in: playback may start, resume or catch up. */
  appended(): void;
  /** An append or a step failed; `fatal`: this MediaSource cannot go on, the media must start over. */
  error(what: string, fatal?: boolean): void;
  /** The media time (s) of the first keyframe in the first media of a MediaSource: it goes to 0 on the element's clock. */
  firstKeyframe?(batch: ArrayBuffer[]): number | undefined;
}

/**
 * The MediaSource side of the player (ManagedMediaSource where that is what the
 * browser has: iOS 17.1+). Everything waiting up to the next step goes in one
 * append, so a joining viewer's whole GOP goes in at once.
 */
export class MediaBuffer {
  private mediaSource: MediaSource | undefined;
  private sourceBuffer: SourceBuffer | undefined;
  private queue: QueueItem[] = [];
  private lastTrim = 0;
  /** The queue starts with an init segment that goes in alone. */
  private initAlone = false;
  /** Media went into this MediaSource (its clock offset is set). */
  private started = false;
  /** The element's time minus the media's (s): the first keyframe is at 0. */
  offset = 0;
  private startedAt = 0;

  /**
   * Whether the element may be seeked: not in the first 250 ms after the first media went in. WebKit links its
   * pipeline then, and a seek (the player's jump to live over a start gap of a few ms) broke it.
   */
  get seekable(): boolean {
    return this.started && performance.now() - this.startedAt > 250;
  }
  /** The codec string of what is appended now. */
  mime: string | undefined;
  /** Frames decoded by earlier MediaSources (the element's own count starts over with each). */
  private decodedBefore = 0;
  /** The element's count when last read: WebKit starts it over on a seek, too. */
  private lastCount = 0;
  private readonly onUpdateEnd = () => {
    this.hooks.appended();
    this.pump();
  };

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly hooks: MediaBufferHooks,
  ) {}

  /** Something outside the appends failed (the element's decoder): as fatal as a failed append. */
  failed(what: string): void {
    this.hooks.error(what, true);
  }

  /** Ready for appends (the SourceBuffer exists). */
  get ready(): boolean {
    return this.sourceBuffer !== undefined;
  }

  /** Frames decoded since the page loaded. */
  framesDecoded(): number {
    const count = this.video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
    if (count < this.lastCount) this.decodedBefore += this.lastCount; // the engine started its count over
    this.lastCount = count;
    return this.decodedBefore + count;
  }

  /** Starts over with a new MediaSource for `mime`; false when this browser cannot play it. */
  reset(mime: string): boolean {
    this.queue = [];
    this.initAlone = false;
    this.started = false;
    this.offset = 0;
    this.detach();
    this.mime = mime;
    if (!MediaSourceImpl?.isTypeSupported(mime)) return false;
    this.framesDecoded(); // what the old MediaSource decoded is counted...
    this.decodedBefore += this.lastCount;
    this.lastCount = 0; // ...and the new one starts from 0
    const ms = new MediaSourceImpl();
    this.mediaSource = ms;
    this.video.src = URL.createObjectURL(ms);
    ms.addEventListener(
      'sourceopen',
      () => {
        if (ms !== this.mediaSource) return;
        URL.revokeObjectURL(this.video.src);
        ms.addEventListener('startstreaming', () => ms === this.mediaSource && this.pump());
        const sb = ms.addSourceBuffer(mime);
        sb.mode = 'segments';
        sb.addEventListener('updateend', this.onUpdateEnd);
        this.sourceBuffer = sb;
        this.pump();
      },
      { once: true },
    );
    return true;
  }

  /** An init segment: it goes before anything queued, in an append of its own. */
  init(data: ArrayBuffer): void {
    this.queue.unshift(data);
    this.initAlone = true;
    this.pump();
  }

  push(item: QueueItem): void {
    this.queue.push(item);
    this.pump();
  }

  pump(): void {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || this.queue.length === 0) return;
    // A ManagedMediaSource (WebKit, iOS) takes appends only while it says it is streaming: WebKit throws
    // InvalidStateError before its first 'startstreaming'. The queue waits for it.
    if ((this.mediaSource as { streaming?: boolean } | undefined)?.streaming === false) return;
    if (isStep(this.queue[0]!)) {
      const step = this.queue.shift() as { removeFrom: number } | { changeType: string };
      try {
        if ('removeFrom' in step) {
          // Old rendition's frames from the switch point on go, so that nothing overlaps the new ones.
          const b = this.video.buffered;
          const end = b.length ? b.end(b.length - 1) : 0;
          const from = step.removeFrom + this.offset;
          if (end > from) return sb.remove(from, end + 1); // continues on updateend
        } else {
          sb.changeType(step.changeType);
        }
      } catch (err) {
        this.hooks.error(`switch step: ${String(err)}`);
      }
      return this.pump();
    }
    // The first media waits for the element to have read the init (HAVE_METADATA): WebKit links its GStreamer
    // pipeline only then, and media pushed before failed about one time in two ("Failed to push buffer",
    // gst_pad_push() not-linked), a fatal media error. Chromium and Firefox get there within the init's append.
    if (!this.initAlone && this.video.readyState === HTMLMediaElement.HAVE_NOTHING) {
      this.video.addEventListener('loadedmetadata', () => this.pump(), { once: true });
      return;
    }
    const initOnly = this.initAlone;
    const upTo = initOnly ? 1 : this.queue.findIndex(isStep);
    this.initAlone = false;
    const batch = (upTo < 0 ? this.queue : this.queue.slice(0, upTo)) as ArrayBuffer[];
    if (batch.length === 0) return;
    if (!initOnly && !this.started) {
      // The first media: its keyframe goes to 0, where the playhead is, so that playback starts without a seek (as
      // hls.js does). A seek while WebKit links its pipeline, right after the first media, broke it ("Failed to
      // push buffer") or hung it. What comes before the keyframe (audio) falls outside the append window.
      this.started = true;
      this.startedAt = performance.now();
      const first = this.hooks.firstKeyframe?.(batch);
      if (first !== undefined) {
        this.offset = -first;
        sb.timestampOffset = this.offset;
      }
    }
    this.queue = upTo < 0 ? [] : this.queue.slice(upTo);
    try {
      sb.appendBuffer(batch.length === 1 ? batch[0]! : concat(batch));
    } catch (err) {
      if ((err as Error).name === 'QuotaExceededError') {
        this.trim(true);
      } else {
        // The queue went with the failed append: the player starts the connection over (a fresh init and GOP).
        this.hooks.error(String(err), true);
      }
    }
  }

  /** Drops what is far behind the playhead: every 5 s, or now (`force`, the buffer is full). */
  trim(force: boolean): void {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || this.video.buffered.length === 0) return;
    const now = performance.now();
    if (!force && now - this.lastTrim < 5000) return;
    this.lastTrim = now;
    const until = this.video.currentTime - KEEP_BEHIND_S;
    if (until > this.video.buffered.start(0)) sb.remove(0, until);
  }

  /** Lets go of the MediaSource: another takes over, or WebRTC plays instead. */
  detach(): void {
    this.sourceBuffer?.removeEventListener('updateend', this.onUpdateEnd);
    this.sourceBuffer = undefined;
    this.mediaSource = undefined;
  }

  /** Ends the MediaSource and empties the element. */
  destroy(): void {
    const ms = this.mediaSource;
    this.queue = [];
    this.detach();
    if (ms?.readyState === 'open') {
      try {
        ms.endOfStream();
      } catch {
        // already ending
      }
    }
    this.video.removeAttribute('src');
    this.video.load();
  }
}

function concat(buffers: ArrayBuffer[]): Uint8Array<ArrayBuffer> {
  let size = 0;
  for (const b of buffers) size += b.byteLength;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out;
}
