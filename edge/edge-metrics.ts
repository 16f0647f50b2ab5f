import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createConsumeMetrics, LATENCY_BUCKETS, type ConsumerSample } from '../server/core/bus/bus-metrics.ts';

/**
 * The edge's metrics. Labels are bounded: the protocol (ws, webrtc), and for the
 * bus consumers the configured streams and ladder renditions; nothing per viewer.
 * The per-fragment paths hold label children, so no label lookup happens per frame.
 */
export function createEdgeMetrics(registry: Registry, consumers: () => Iterable<ConsumerSample> = () => []) {
  const viewers = new Gauge({
    name: 'relay_edge_viewers',
    help: 'Viewers connected, by protocol: ws (WebSocket fMP4 into MSE), webrtc (WHEP, media flowing).',
    labelNames: ['protocol'] as const,
    registers: [registry],
  });
  const bytesOut = new Counter({
    name: 'relay_edge_bytes_out_total',
    help: 'Media bytes written to viewers, by protocol (WebRTC: RTP payload bytes).',
    labelNames: ['protocol'] as const,
    registers: [registry],
  });
  const timeToFirstFrame = new Histogram({
    name: 'relay_edge_time_to_first_frame_seconds',
    help: 'A viewer asking to watch (WebSocket open, WHEP offer) -> its first picture written to it, by protocol.',
    labelNames: ['protocol'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [registry],
  });
  for (const protocol of ['ws', 'webrtc'] as const) {
    viewers.set({ protocol }, 0);
    bytesOut.inc({ protocol }, 0);
  }
  return {
    viewers: { ws: viewers.labels({ protocol: 'ws' }), webrtc: viewers.labels({ protocol: 'webrtc' }) },
    bytesOut: { ws: bytesOut.labels({ protocol: 'ws' }), webrtc: bytesOut.labels({ protocol: 'webrtc' }) },
    timeToFirstFrame: { ws: timeToFirstFrame.labels({ protocol: 'ws' }), webrtc: timeToFirstFrame.labels({ protocol: 'webrtc' }) },
    viewersSkipped: new Counter({
      name: 'relay_edge_viewers_skipped_total',
      help: 'Times a viewer fell behind and skipped to the next keyframe.',
      registers: [registry],
    }),
    viewersDisconnected: new Counter({
      name: 'relay_edge_viewers_disconnected_slow_total',
      help: 'Viewers disconnected for staying behind live (VIEWER_TOO_SLOW).',
      registers: [registry],
    }),
    gaps: new Counter({
      name: 'relay_edge_frame_gaps_total',
      help: "Gaps in a stream's frame sequence seen by the edge (it resumes at the next keyframe).",
      registers: [registry],
    }),
    relayLatency: new Histogram({
      name: 'relay_edge_relay_latency_seconds',
      help: 'Frame received by the origin -> written to viewer sockets by the edge (one observation per fragment).',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    bus: createConsumeMetrics(registry, consumers),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
