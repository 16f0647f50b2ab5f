import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Fine below 20 ms, where the relay's targets are. */
export const RELAY_LATENCY_BUCKETS = [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The edge's metrics. Labels are bounded: no per-viewer or per-stream labels here. */
export function createEdgeMetrics(registry: Registry) {
  return {
    viewers: new Gauge({ name: 'relay_edge_viewers', help: 'Viewers connected over WebSocket (fMP4).', registers: [registry] }),
    rtcViewers: new Gauge({ name: 'relay_edge_webrtc_viewers', help: 'Viewers connected over WebRTC (WHEP), media flowing.', registers: [registry] }),
    bytesOut: new Counter({ name: 'relay_edge_bytes_out_total', help: 'Media bytes written to viewers.', registers: [registry] }),
    viewersSkipped: new Counter({ name: 'relay_edge_viewers_skipped_total', help: 'Times a viewer fell behind and skipped to the next keyframe.', registers: [registry] }),
    viewersDisconnected: new Counter({ name: 'relay_edge_viewers_disconnected_slow_total', help: 'Viewers disconnected for staying behind live.', registers: [registry] }),
    consumerRestarts: new Counter({ name: 'relay_edge_consumer_restarts_total', help: 'Stream consumers recreated by the watchdog.', registers: [registry] }),
    gaps: new Counter({ name: 'relay_edge_frame_gaps_total', help: 'Gaps in a stream\'s frame sequence seen by the edge.', registers: [registry] }),
    relayLatency: new Histogram({
      name: 'relay_edge_relay_latency_seconds',
      help: 'Frame received by the origin -> written to viewer sockets by the edge (one observation per fragment).',
      buckets: RELAY_LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
