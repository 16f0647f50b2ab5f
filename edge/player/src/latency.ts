// Latency control: how far behind the newest frame the player plays, and keeping it there.

/** How far behind the newest frame we aim to play (s). */
export const LIVE_TARGET_S = 0.4;
/** Further behind than this: seek instead of speeding up (s). */
const JUMP_BEHIND_S = 2.5;

/**
 * Media time -> ingest wall-clock time, from the fragments' `prft` boxes: the
 * latency shown, and glass-to-glass per displayed frame.
 */
export class ClockMap {
  private entries: { media: number; wall: number }[] = [];

  add(media: number, wall: number): void {
    this.entries.push({ media, wall });
    if (this.entries.length > 900) this.entries.splice(0, 300);
  }

  clear(): void {
    this.entries = [];
  }

  /**
   * The ingest wall-clock time (ms) of a WebRTC picture, from its RTP timestamp: the relay stamps RTP
   * video with the picture's presentation time in 90 kHz ticks (mod 2^32), the timeline the socket's
   * prft boxes map (a fast start read them). Undefined without an entry.
   */
  wallClockAtRtp(rtpTimestamp: number): number | undefined {
    const last = this.entries.at(-1);
    if (!last) return undefined;
    const lastTicks = Math.round(last.media * RTP_VIDEO_RATE) % 2 ** 32;
    const delta = (rtpTimestamp - lastTicks) | 0; // signed: a 32-bit wrap, or a picture before the entry
    return last.wall + (delta / RTP_VIDEO_RATE) * 1000;
  }

  /** The ingest wall-clock time (ms) of a media time, from the nearest entry at or before it. */
  wallClockAt(mediaTime: number): number | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const m = this.entries[i]!;
      if (m.media <= mediaTime + 1e-6) return m.wall + (mediaTime - m.media) * 1000;
    }
    return undefined;
  }
}

const RTP_VIDEO_RATE = 90_000;

/** Whether playback wants data it does not have. */
export const waiting = (video: HTMLVideoElement): boolean => !video.paused && video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA;

/**
 * Keeps the playhead near live. Starts, skips gaps (a keyframe skip leaves one),
 * jumps when far behind, and otherwise steers the playback rate, with hysteresis
 * so that it does not flap. `urgentSwitch`: an urgent rendition switch dropped
 * the old rendition, so what is left must last (half speed).
 */
export function keepLive(video: HTMLVideoElement, urgentSwitch: boolean, play: () => void): void {
  const buffered = video.buffered;
  const start = buffered.start(0);
  const end = buffered.end(buffered.length - 1);
  if (video.currentTime < start || end - video.currentTime > JUMP_BEHIND_S) {
    video.currentTime = Math.max(start, end - LIVE_TARGET_S);
  } else {
    // Chromium waits a little before the end of a range (measured: 0.15 s), not only at it.
    const slack = waiting(video) ? 0.3 : 0.05;
    for (let i = 1; i < buffered.length; i++) {
      if (video.currentTime >= buffered.end(i - 1) - slack && video.currentTime < buffered.start(i)) video.currentTime = buffered.start(i);
    }
  }
  // Catch up by playing a little faster, or rebuild a buffer run dry by playing a little
  // slower (pitch is kept). Without the slow side, one pause in delivery left the playhead
  // at the very edge of the data for good, and every later jitter was a stall (seen after
  // rendition switches).
  const behind = end - video.currentTime;
  // Nearly dry, or the old rendition already dropped by an urgent switch: half speed
  // makes what is left last twice as long, which is often the whole wait for more.
  // (Chromium stops with about 0.1 s still buffered, and once stopped it waits for
  // about 0.25 s more before it plays on: measured. Not stopping is worth a lot.)
  if (behind < 0.2 || urgentSwitch) video.playbackRate = 0.5;
  else if (behind > LIVE_TARGET_S + 0.5) video.playbackRate = 1.25;
  else if (behind > LIVE_TARGET_S + 0.15) video.playbackRate = Math.max(video.playbackRate, 1.1);
  else if (behind < LIVE_TARGET_S * 0.75 || video.playbackRate < 0.9) video.playbackRate = 0.9;
  else if (video.playbackRate > 1 ? behind < LIVE_TARGET_S + 0.03 : behind > LIVE_TARGET_S - 0.03) video.playbackRate = 1;
  if (video.paused) play();
}

/** Unix epoch in NTP time (1900), ms. */
const NTP_UNIX_OFFSET_MS = 2208988800000;

/**
 * How old the picture is over WebRTC, every 0.5 s. The relay's sender reports map
 * RTP time to the stream's ingest wall-clock time, so the receiver's
 * estimatedPlayoutTimestamp (NTP, ms) is the ingest time of what plays now.
 * Returns the stop.
 */
/** A glass-to-glass figure above this is not one. */
export const MAX_PLAUSIBLE_MS = 60_000;

export function watchRtcLatency(pc: RTCPeerConnection, latency: (ms: number) => void): () => void {
  const timer = setInterval(() => {
    if (pc.connectionState === 'closed') return clearInterval(timer);
    pc.getStats().then(
      (stats) =>
        stats.forEach((s: { type: string; kind?: string; estimatedPlayoutTimestamp?: number }) => {
          if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.estimatedPlayoutTimestamp) return;
          const ms = Date.now() + NTP_UNIX_OFFSET_MS - s.estimatedPlayoutTimestamp;
          // More than a minute: the sender reports carry a clock of their own, not wall-clock time (mediasoup's
          // worker reports its own uptime): no figure rather than a wrong one.
          if (ms < MAX_PLAUSIBLE_MS) latency(Math.max(0, ms));
        }),
      () => {},
    );
  }, 500);
  return () => clearInterval(timer);
}
