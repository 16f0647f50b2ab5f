import { Counter, Gauge, type Registry } from 'prom-client';

export interface TranscodeProgress {
  stream: string;
  speed?: number;
  backlogMs?: number;
}

/**
 * Transcoding metrics. Labels are bounded: streams are the configured ones (only
 * live ones are reported), renditions the ladder's names.
 */
export function createTranscodeMetrics(registry: Registry, live: () => Iterable<TranscodeProgress>) {
  return {
    speed: new Gauge({
      name: 'relay_transcode_speed',
      help: 'ffmpeg output media time per wall-clock second, smoothed (1 = real time), per live stream.',
      labelNames: ['stream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of live()) if (p.speed !== undefined) this.set({ stream: p.stream }, p.speed);
      },
    }),
    backlog: new Gauge({
      name: 'relay_transcode_backlog_seconds',
      help: "How far ffmpeg's output trails its input in media time, per live stream.",
      labelNames: ['stream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of live()) if (p.backlogMs !== undefined) this.set({ stream: p.stream }, p.backlogMs / 1000);
      },
    }),
    restarts: new Counter({ name: 'relay_transcode_restarts_total', help: 'ffmpeg processes restarted after they failed.', registers: [registry] }),
    shed: new Counter({
      name: 'relay_transcode_rungs_shed_total',
      help: 'Rungs shed because ffmpeg could not keep up with real time (TRANSCODE_BEHIND).',
      labelNames: ['rendition'] as const,
      registers: [registry],
    }),
  };
}

export type TranscodeMetrics = ReturnType<typeof createTranscodeMetrics>;
