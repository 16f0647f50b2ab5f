import { Counter, Gauge, Registry, Summary } from 'prom-client';

/** The edge's metrics. Labels are bounded: no per-viewer or per-stream labels here. */
export function createEdgeMetrics(registry: Registry) {
  return {
    viewers: new Gauge({ name: 'relay_edge_viewers', help: 'Viewers connected over WebSocket (fMP4).', registers: [registry] }),
    bytesOut: new Counter({ name: 'relay_edge_bytes_out_total', help: 'Media bytes written to viewers.', registers: [registry] }),
    viewersSkipped: new Counter({ name: 'relay_edge_viewers_skipped_total', help: 'Times a viewer fell behind and skipped to the next keyframe.', registers: [registry] }),
    viewersDisconnected: new Counter({ name: 'relay_edge_viewers_disconnected_slow_total', help: 'Viewers disconnected for staying behind live.', registers: [registry] }),
    consumerRestarts: new Counter({ name: 'relay_edge_consumer_restarts_total', help: 'Stream consumers recreated by the watchdog.', registers: [registry] }),
    gaps: new Counter({ name: 'relay_edge_frame_gaps_total', help: 'Gaps in a stream\'s frame sequence seen by the edge.', registers: [registry] }),
    relayLatency: new Summary({
      name: 'relay_edge_relay_latency_seconds',
      help: 'Frame received by the origin -> written to viewer sockets by the edge.',
      percentiles: [0.5, 0.9, 0.99],
      maxAgeSeconds: 60,
      ageBuckets: 3,
      registers: [registry],
    }),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
