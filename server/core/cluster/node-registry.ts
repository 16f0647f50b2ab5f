import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { NatsConnection } from '../bus/nats.ts';
import { Heartbeat, openTtlBucket, readRecords, type TtlBucket } from './kv-bucket.ts';

/**
 * waiting: for a keyframe to start from; running: ffmpeg is sending; retrying: ffmpeg stopped, waiting out its
 * backoff; unsupported: the stream's codecs cannot go to this target as they are; closed: the publication ended.
 */
export type ForwardState = 'waiting' | 'running' | 'retrying' | 'unsupported' | 'closed';

export interface ForwardStatus {
  /** Its id, when added at run time through the admin API (which removes it by id); absent for configured ones. */
  id?: string;
  /** The target's URL with its secrets hidden. */
  target: string;
  state: ForwardState;
  /** ffmpeg processes that stopped on their own and were tried again. */
  restarts: number;
  droppedFrames: number;
  /** Why the last one stopped (ffmpeg's last words, secrets hidden), or why the target cannot take the stream. */
  error?: string;
}

/** A stream live on an origin, as that origin reports it. */
export interface OriginStreamRecord {
  stream: string;
  protocol: 'rtmp' | 'rtmps' | 'whip' | 'srt';
  /** Wall-clock ms the publisher was accepted. */
  since: number;
  /** The lease's fencing token. */
  token: number;
  bitsPerSecond: number;
  framesPerSecond: number;
  /** Its forwards to other servers (streams[].forward), their URLs' secrets hidden; absent when none. */
  forwards?: ForwardStatus[];
}

/** What one node runs, as it heartbeats it into the node bucket. */
export interface NodeRecord {
  id: string;
  roles: ('origin' | 'edge' | 'recorder')[];
  version: string;
  /** Its HTTP base URL. */
  url: string;
  /** Wall-clock ms it started. */
  startedAt: number;
  /** Set while it shuts down. */
  draining: boolean;
  /** `rtmps`: the RTMPS URL, when this origin takes RTMP over TLS; `srt`: the SRT URL, when it takes SRT. */
  origin?: { rtmp: string; rtmps?: string; srt?: string; streams: OriginStreamRecord[] };
  /** Viewers per stream by protocol (`hls`: clients seen lately; absent from nodes of earlier versions). */
  edge?: { capacity: number; load: number; viewers: Record<string, { ws: number; webrtc: number; hls?: number }> };
}

export function openNodeBucket(nc: NatsConnection, cluster: RelayConfig['cluster'], log: Logger): Promise<TtlBucket> {
  return openTtlBucket(nc, cluster.nodeBucket, cluster.edgeTtlMs, cluster.kvReplicas, 2000, log);
}

/** Every node's heartbeat: what the admin API and the dashboard show. */
export class NodeHeartbeat extends Heartbeat<NodeRecord> {
  constructor(kv: TtlBucket, cluster: RelayConfig['cluster'], record: () => NodeRecord, log: Logger) {
    super(kv, cluster.edgeHeartbeatMs, record, log, 'node');
  }
}

/** The nodes alive now (records not renewed within the TTL are gone from the bucket). */
export async function readNodes(kv: TtlBucket): Promise<NodeRecord[]> {
  const records = await readRecords<NodeRecord>(kv, (n) => typeof n.id === 'string' && Array.isArray(n.roles), true);
  const nodes = records.map((r) => r.value);
  return nodes.sort((a, b) => a.id.localeCompare(b.id));
}
