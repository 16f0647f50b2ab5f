// Automatic rendition choice for the live player: pure, no DOM (tested under node).
//
// Delivery is pushed over a WebSocket, so the player cannot time segment
// downloads as HLS or DASH players do. What it can see every tick:
//  - the bytes arriving (over a congested link, that is the link's rate),
//  - how far behind live it plays (data arriving late makes this grow),
//  - whether the video element is waiting for data (a stall),
//  - how fast media time arrives against wall time (1.0 on a link that keeps up).
// Down: media arriving slower than `slowArrival` x real time for `slowAfterMs`
// (the earliest sign: the buffer has not run dry yet), or behind live and still
// falling back, or stalled, for `downAfterMs`: go to the highest rendition that
// fits in `safety` x the measured rate. A down-switch is urgent: the player
// drops the old rendition at once (see switching.ts).
// Up: healthy for `holdMs` since the last switch: try one rendition higher.
// A try that fails soon after doubles the hold (up to `maxHoldMs`), so a link
// at its limit is not probed every few seconds.

export interface AbrOptions {
  behindMs: number;
  healthyMs: number;
  downAfterMs: number;
  slowArrival: number;
  arrivalWindowMs: number;
  slowAfterMs: number;
  holdMs: number;
  maxHoldMs: number;
  failedTryMs: number;
  safety: number;
  windowMs: number;
  startKbps: number;
}

export interface AbrRendition {
  name: string;
  /** Video + audio bitrate, kbit/s. */
  kbps?: number | undefined;
}

export interface AbrSample {
  now: number;
  /** Media bytes received so far, on every socket. */
  bytes: number;
  latencyMs?: number | undefined;
  stalled: boolean;
  switching: boolean;
  /** The newest media time received (s); undefined when nothing is live. */
  receivedS?: number | undefined;
}

/** One decision, for the log: [time, from, to, why]. */
export type AbrLogEntry = [number, string, string, string];

const ABR_DEFAULTS: AbrOptions = {
  /** Latency (ms) above which, when rising, playback is falling behind. */
  behindMs: 1400,
  /** Latency (ms) under which playback is healthy enough to try a higher rendition. */
  healthyMs: 1100,
  /** How long trouble lasts before going down. */
  downAfterMs: 1000,
  /** Media time arriving per wall time under which the link does not keep up... */
  slowArrival: 0.75,
  /** ...measured over this window... */
  arrivalWindowMs: 1000,
  /** ...for this long (a hiccup shorter than about half a second does not count). */
  slowAfterMs: 250,
  /** Healthy time before trying one higher; doubled after a failed try. */
  holdMs: 8000,
  maxHoldMs: 64000,
  /** An up-switch followed by a down-switch within this long was a failed try. */
  failedTryMs: 15000,
  /** Share of the measured rate a rendition may use. */
  safety: 0.8,
  /** The throughput window. */
  windowMs: 3000,
  /** Estimate used before anything is measured (kbit/s). */
  startKbps: 2000,
};

/** The renditions auto mode chooses among: transcoded ones, highest first (the source only when alone). */
export function autoRenditions(renditions: AbrRendition[]): AbrRendition[] {
  const withRate = renditions.filter((r) => r.name !== 'source' && (r.kbps ?? 0) > 0);
  const list = withRate.length > 0 ? withRate : renditions.filter((r) => r.name === 'source');
  return [...list].sort((a, b) => (b.kbps ?? 0) - (a.kbps ?? 0));
}

export class AbrController {
  private readonly o: AbrOptions;
  hold: number;
  private samples: [number, number][] = []; // [now, cumulative bytes]
  private latencies: [number, number][] = []; // [now, ms]
  private arrivals: [number, number][] = []; // [now, newest media time received (s)]
  private slowSince: number | undefined;
  private troubleSince: number | undefined;
  private healthySince: number | undefined;
  lastSwitch = { at: -Infinity, up: false };
  readonly log: AbrLogEntry[] = [];

  constructor(options: Partial<AbrOptions> = {}) {
    this.o = { ...ABR_DEFAULTS, ...options };
    this.hold = this.o.holdMs;
  }

  /** Measured throughput over the last `spanMs` (the window by default; kbit/s), or undefined before 60% of that span. */
  rateKbps(spanMs = this.o.windowMs): number | undefined {
    const s = this.samples;
    if (s.length < 2) return undefined;
    const [t1, b1] = s[s.length - 1]!;
    let first = 0;
    while (first < s.length - 2 && t1 - s[first + 1]![0] >= spanMs) first++;
    const [t0, b0] = s[first]!;
    if (t1 - t0 < spanMs * 0.6) return undefined;
    return ((b1 - b0) * 8) / (t1 - t0);
  }

  /** Media seconds received per wall second over the arrival window, or undefined before a full window. */
  arrivalRatio(): number | undefined {
    const a = this.arrivals;
    if (a.length < 2) return undefined;
    const [t0, m0] = a[0]!;
    const [t1, m1] = a[a.length - 1]!;
    if (t1 - t0 < this.o.arrivalWindowMs * 0.8) return undefined;
    return ((m1 - m0) * 1000) / (t1 - t0);
  }

  /** The rendition to start with: the highest that fits the last known rate. */
  initial(renditions: AbrRendition[], knownKbps?: number): string | undefined {
    const list = autoRenditions(renditions);
    if (list.length === 0) return undefined;
    const budget = (knownKbps ?? this.o.startKbps) * this.o.safety;
    return (list.find((r) => r.kbps === undefined || r.kbps <= budget) ?? list[list.length - 1]!).name;
  }

  /**
   * One tick. `sample`: { now, bytes (cumulative, every socket), latencyMs, stalled, switching,
   * receivedS (the newest media time received, seconds; undefined when nothing is live) }.
   * Returns a rendition name to switch to, or undefined to stay.
   */
  decide(sample: AbrSample, renditions: AbrRendition[], current: string): string | undefined {
    const { now } = sample;
    // An up-switch that held: the next try waits the base hold again.
    if (this.lastSwitch.up && now - this.lastSwitch.at > this.o.failedTryMs) this.hold = this.o.holdMs;
    this.samples.push([now, sample.bytes]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > this.o.windowMs) this.samples.shift();
    if (sample.latencyMs !== undefined) this.latencies.push([now, sample.latencyMs]);
    while (this.latencies.length > 2 && now - this.latencies[0]![0] > 2000) this.latencies.shift();
    if (sample.receivedS === undefined) this.arrivals = [];
    else this.arrivals.push([now, sample.receivedS]);
    while (this.arrivals.length > 2 && now - this.arrivals[0]![0] > this.o.arrivalWindowMs) this.arrivals.shift();
    const list = autoRenditions(renditions);
    const index = list.findIndex((r) => r.name === current);
    if (list.length < 2 || index < 0 || sample.switching) {
      this.troubleSince = this.healthySince = this.slowSince = undefined;
      return undefined;
    }
    const latency = sample.latencyMs;
    const oldest = this.latencies[0]?.[1];
    const rising = latency !== undefined && oldest !== undefined && latency - oldest > 100;
    const trouble = sample.stalled || (latency !== undefined && latency > this.o.behindMs && rising);
    const healthy = !sample.stalled && latency !== undefined && latency < this.o.healthyMs;
    const arrival = this.arrivalRatio();
    const slow = arrival !== undefined && arrival < this.o.slowArrival;
    this.troubleSince = trouble ? (this.troubleSince ?? now) : undefined;
    this.slowSince = slow ? (this.slowSince ?? now) : undefined;
    this.healthySince = healthy && !slow ? (this.healthySince ?? now) : undefined;

    const troubled = this.troubleSince !== undefined && now - this.troubleSince >= this.o.downAfterMs;
    const starved = this.slowSince !== undefined && now - this.slowSince >= this.o.slowAfterMs;
    if ((troubled || starved) && index < list.length - 1) {
      // Starved: the link changed just now, so the recent rate says what it is.
      const rate = troubled ? this.rateKbps() : this.rateKbps(this.o.arrivalWindowMs);
      const fits = rate === undefined ? undefined : list.slice(index + 1).find((r) => (r.kbps ?? 0) <= rate * this.o.safety);
      const next = fits ?? list[index + 1]!;
      if (this.lastSwitch.up && now - this.lastSwitch.at < this.o.failedTryMs) this.hold = Math.min(this.hold * 2, this.o.maxHoldMs);
      const why = troubled
        ? sample.stalled
          ? 'stalled'
          : `${Math.round(latency!)} ms behind and rising`
        : `media arriving at ${arrival!.toFixed(2)}x real time`;
      return this.switched(now, current, next.name, false, `${why}, ${rate === undefined ? 'rate unknown' : `${Math.round(rate)} kbit/s arriving`}`);
    }
    if (this.healthySince !== undefined && index > 0 && now - Math.max(this.healthySince, this.lastSwitch.at) >= this.hold) {
      return this.switched(now, current, list[index - 1]!.name, true, `healthy for ${Math.round(this.hold / 1000)} s`);
    }
    return undefined;
  }

  /** The player could not reach the rendition it was sent up to (no keyframe came in time): a failed try. */
  abandoned(now: number, current: string): void {
    this.hold = Math.min(this.hold * 2, this.o.maxHoldMs);
    this.lastSwitch = { at: now, up: false };
    this.troubleSince = this.healthySince = this.slowSince = undefined;
    this.log.push([Math.round(now), current, current, 'switch abandoned: no keyframe in time']);
    if (this.log.length > 50) this.log.shift();
  }

  private switched(now: number, from: string, to: string, up: boolean, why: string): string {
    this.lastSwitch = { at: now, up };
    this.troubleSince = this.healthySince = this.slowSince = undefined;
    this.latencies = [];
    this.arrivals = [];
    this.log.push([Math.round(now), from, to, why]);
    if (this.log.length > 50) this.log.shift();
    return to;
  }
}
