import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * A live stream's incoming bitrate and video frame rate over the last second,
 * updated per frame at the cost of two additions (no timer, no allocation).
 */
export class RateMeter {
  private windowStart: number;
  private bytes = 0;
  private frames = 0;
  private lastAt: number;
  bitsPerSecond = 0;
  framesPerSecond = 0;

  constructor(
    now: number,
    private readonly windowMs = 1000,
  ) {
    this.windowStart = now;
    this.lastAt = now;
  }

  /** One frame received: its payload size, and whether it is a video frame. */
  add(bytes: number, video: boolean, now: number): void {
    this.bytes += bytes;
    if (video) this.frames++;
    this.lastAt = now;
    const elapsed = now - this.windowStart;
    if (elapsed >= this.windowMs) {
      this.bitsPerSecond = (this.bytes * 8000) / elapsed;
      this.framesPerSecond = (this.frames * 1000) / elapsed;
      this.bytes = 0;
      this.frames = 0;
      this.windowStart = now;
    }
  }

  /** The rates as of `now`: zero once nothing has arrived for two windows (a stalled publisher). */
  read(now: number): { bitsPerSecond: number; framesPerSecond: number } {
    if (now - this.lastAt > 2 * this.windowMs) return { bitsPerSecond: 0, framesPerSecond: 0 };
    return { bitsPerSecond: this.bitsPerSecond, framesPerSecond: this.framesPerSecond };
  }
}

export interface IngestSample {
  stream: string;
  protocol: 'rtmp' | 'rtmps' | 'whip' | 'srt';
  meter: RateMeter;
}

/**
 * Ingest metrics of an origin. Labels are bounded: streams are the configured
 * ones (only live ones are reported), reasons the stable error codes.
 */
export function createIngestMetrics(registry: Registry, live: () => Iterable<IngestSample>) {
  return {
    liveStreams: new Gauge({
      name: 'relay_ingest_live_streams',
      help: 'Streams with a publisher on this origin, by protocol.',
      labelNames: ['protocol'] as const,
      registers: [registry],
      collect() {
        const counts = { rtmp: 0, rtmps: 0, whip: 0, srt: 0 };
        for (const s of live()) counts[s.protocol]++;
        for (const [protocol, n] of Object.entries(counts)) this.set({ protocol }, n);
      },
    }),
    bitrate: new Gauge({
      name: 'relay_ingest_bytes_per_second',
      help: 'Media bytes per second received from the publisher over the last second (its bitrate / 8), per live stream.',
      labelNames: ['stream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const now = performance.now();
        for (const s of live()) this.set({ stream: s.stream }, Math.round(s.meter.read(now).bitsPerSecond / 8));
      },
    }),
    frameRate: new Gauge({
      name: 'relay_ingest_frame_rate',
      help: 'Video frames per second received from the publisher over the last second, per live stream.',
      labelNames: ['stream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const now = performance.now();
        for (const s of live()) this.set({ stream: s.stream }, Math.round(s.meter.read(now).framesPerSecond * 100) / 100);
      },
    }),
    connects: new Counter({
      name: 'relay_ingest_publisher_connects_total',
      help: 'Publishers accepted (lease taken), by protocol.',
      labelNames: ['protocol'] as const,
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'relay_ingest_publisher_refusals_total',
      help: 'Publishers refused, by protocol and stable error code (STREAM_KEY_INVALID, STREAM_ALREADY_PUBLISHING, ...).',
      labelNames: ['protocol', 'reason'] as const,
      registers: [registry],
    }),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
