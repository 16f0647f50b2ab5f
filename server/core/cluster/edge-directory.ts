import { Heartbeat, openTtlBucket, readRecords, type TtlBucket } from './kv-bucket.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { NatsConnection } from '../bus/nats.ts';
import type { EdgeMember } from './placement-ring.ts';
import { RegionRouter } from './region-router.ts';

export function openEdgeBucket(nc: NatsConnection, cluster: RelayConfig['cluster'], log: Logger): Promise<TtlBucket> {
  return openTtlBucket(nc, cluster.edgeBucket, cluster.edgeTtlMs, cluster.kvReplicas, 2000, log);
}

/**
 * What every node knows of the live edges: it polls the membership bucket
 * (nats-server 2.9 watchers do not see keys expire, so nothing waits on them),
 * keeps the placement ring, and routes viewers. Between polls it counts the
 * viewers it sent to each edge, so that a burst does not all land on one.
 */
export class EdgeDirectory {
  private ring = new RegionRouter([]);
  private readonly sentSincePoll = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly kv: TtlBucket,
    private readonly cluster: RelayConfig['cluster'],
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.cluster.edgeHeartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get members(): readonly EdgeMember[] {
    return this.ring.members;
  }

  member(id: string): EdgeMember | undefined {
    return this.ring.members.find((m) => m.id === id);
  }

  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const records = await readRecords<EdgeMember>(this.kv, (m) => typeof m.id === 'string' && typeof m.url === 'string' && m.capacity > 0 && m.load >= 0);
      const members = records.map(({ value: m }): EdgeMember => ({
        id: m.id,
        url: m.url,
        capacity: m.capacity,
        load: m.load,
        ...(typeof m.region === 'string' && m.region && { region: m.region }),
      }));
      const before = this.ring.members.map((m) => m.id).join(',');
      this.ring = new RegionRouter(members, { balanceFactor: this.cluster.balanceFactor, spillAfter: this.cluster.spillAfter });
      this.sentSincePoll.clear();
      const after = this.ring.members.map((m) => m.id).join(',');
      if (before !== after) this.log.info({ edges: this.ring.members.map((m) => m.id) }, 'edge membership changed');
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'edge membership poll failed');
    } finally {
      this.polling = false;
    }
  }

  /**
   * The edge a new viewer of `stream` should use now, skipping `exclude` (edges
   * that failed it): in the viewer's `region` first (default: this node's own,
   * `cluster.region`). `count: false` for a mere look-up (a page load, before its
   * WebSocket is the viewer): it does not add to the edge's load.
   */
  route(stream: string, exclude?: ReadonlySet<string>, options: { count?: boolean; region?: string } = {}): EdgeMember | undefined {
    const loads = new Map<string, number>();
    for (const m of this.ring.members) loads.set(m.id, m.load + (this.sentSincePoll.get(m.id) ?? 0));
    const edge = this.ring.place(stream, options.region || this.cluster.region || undefined, { exclude, loads });
    if (edge && options.count !== false) this.sentSincePoll.set(edge.id, (this.sentSincePoll.get(edge.id) ?? 0) + 1);
    return edge;
  }
}

/** An edge's own heartbeat: its address, capacity and load, every `edgeHeartbeatMs`; stopping leaves the ring (draining). */
export class EdgeHeartbeat extends Heartbeat<EdgeMember> {
  constructor(kv: TtlBucket, cluster: RelayConfig['cluster'], self: () => EdgeMember, log: Logger) {
    super(kv, cluster.edgeHeartbeatMs, self, log, 'edge');
  }
}
