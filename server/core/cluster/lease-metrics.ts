import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Stream-lease metrics of an origin. */
export function createLeaseMetrics(registry: Registry, held: () => number) {
  return {
    held: new Gauge({
      name: 'relay_leases_held',
      help: 'Stream leases this origin holds.',
      registers: [registry],
      collect() {
        this.set(held());
      },
    }),
    acquired: new Counter({
      name: 'relay_leases_acquired_total',
      help: 'Stream leases taken, by how: "free" (nobody held it) or "takeover" (its origin stopped renewing).',
      labelNames: ['how'] as const,
      registers: [registry],
    }),
    lost: new Counter({
      name: 'relay_leases_lost_total',
      help: 'Stream leases lost (LEASE_LOST): renewals failed past the TTL, or another origin holds it now.',
      registers: [registry],
    }),
    renewalLatency: new Histogram({
      name: 'relay_leases_renewal_latency_seconds',
      help: 'Lease renewal (compare-and-set in NATS KV) sent -> acknowledged.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [registry],
    }),
  };
}

export type LeaseMetrics = ReturnType<typeof createLeaseMetrics>;
