import { Counter, Gauge, type Registry } from 'prom-client';
import type { ForwardState } from '../../core/cluster/node-registry.ts';

/** Forwarding (restreaming) metrics. Labels are bounded: a forward's state, never its URL (it holds a stream key). */
export function createForwardMetrics(registry: Registry, states: () => Iterable<ForwardState>) {
  return {
    targets: new Gauge({
      name: 'relay_forward_targets',
      help: 'Forwards of live streams to other servers (streams[].forward), by state: running, waiting (for a keyframe), retrying, unsupported.',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const counts = new Map<ForwardState, number>();
        for (const s of states()) counts.set(s, (counts.get(s) ?? 0) + 1);
        for (const state of ['running', 'waiting', 'retrying', 'unsupported'] as const) this.set({ state }, counts.get(state) ?? 0);
      },
    }),
    restarts: new Counter({
      name: 'relay_forward_restarts_total',
      help: 'Forwarding ffmpeg processes that stopped on their own (the target refused, went away or stopped reading), each tried again.',
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'relay_forward_dropped_frames_total',
      help: 'Frames not forwarded because the target read too slowly (forward.maxQueueBytes): the forward goes on from the next keyframe.',
      registers: [registry],
    }),
  };
}

export type ForwardMetrics = ReturnType<typeof createForwardMetrics>;
