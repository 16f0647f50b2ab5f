import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PublisherStats } from './frame-publisher.ts';

/** Fine below 20 ms, where the relay's latency targets are. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The publishing side of the bus (origins). */
export function createPublishMetrics(registry: Registry, stats: () => PublisherStats) {
  return {
    publishLatency: new Histogram({
      name: 'relay_bus_publish_latency_seconds',
      help: 'Frame message published -> acknowledged by JetStream (stored, replicated).',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'relay_bus_publish_in_flight',
      help: 'Frame messages published and not yet acknowledged (bounded by bus.publishWindow).',
      registers: [registry],
      collect() {
        this.set(stats().inFlight);
      },
    }),
    published: new Counter({
      name: 'relay_bus_messages_published_total',
      help: 'Frame messages JetStream acknowledged.',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(stats().published);
      },
    }),
    failed: new Counter({
      name: 'relay_bus_publish_failures_total',
      help: 'Frame messages JetStream did not store (BUS_PUBLISH_FAILED); the stream resumes at its next keyframe.',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(stats().failed);
      },
    }),
    resent: new Counter({
      name: 'relay_bus_messages_resent_total',
      help: 'Frame messages sent again after NATS came back: unacknowledged when it went away, or held while it was away.',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(stats().resent);
      },
    }),
  };
}

export type PublishMetrics = ReturnType<typeof createPublishMetrics>;

export interface ConsumerSample {
  stream: string;
  rendition: string;
  /** Messages on the bus for this consumer not delivered yet. */
  pending: number;
}

/** The consuming side of the bus (edges): one consumer per stream and rendition watched. */
export function createConsumeMetrics(registry: Registry, consumers: () => Iterable<ConsumerSample>) {
  return {
    lag: new Gauge({
      name: 'relay_bus_consumer_lag_messages',
      help: 'Messages stored for a stream consumer and not yet delivered to the edge, per stream and rendition consumed here.',
      labelNames: ['stream', 'rendition'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of consumers()) this.set({ stream: c.stream, rendition: c.rendition }, c.pending);
      },
    }),
    consumers: new Gauge({
      name: 'relay_bus_consumers',
      help: 'Stream consumers this edge runs (one per stream and rendition with viewers, or lingering).',
      registers: [registry],
      collect() {
        let n = 0;
        for (const _ of consumers()) n++;
        this.set(n);
      },
    }),
    restarts: new Counter({
      name: 'relay_bus_consumer_restarts_total',
      help: 'Stream consumers recreated by the watchdog (stalled, or the stream was recreated).',
      registers: [registry],
    }),
  };
}
