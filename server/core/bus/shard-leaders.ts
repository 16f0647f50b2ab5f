import type { Logger } from '../log.ts';
import { jetstreamManager, type NatsConnection } from './nats.ts';
import type { BusLayout } from './shards.ts';

/** A shard's Raft group as the server reports it: who leads it, and which other nodes could. */
export interface ShardLeadership {
  jsStream: string;
  leader: string | undefined;
  /** Nodes holding a current replica, besides the leader. */
  followers: string[];
  /** No frame stored lately: moving its leader costs nothing (a busy shard's in-flight frames fail while it changes). */
  idle?: boolean;
}

/**
 * Which shard to move off its leader so that leaders spread over the nodes, or undefined when
 * they are as even as they can be. A stream's leader is elected at random among its replicas, so
 * a few shards on three nodes often start 4-1-1 (one node then stores two thirds of all frames).
 * Moving means asking the leader to step down: one of the followers takes over, at random; the
 * next check moves another if the spread is still uneven. Only a shard with a current follower on
 * a node that leads at least two fewer can help, so that a move never makes things worse in
 * expectation. An idle shard is moved first; with `busy: false`, only an idle one (moving a busy
 * shard's leader fails the frames in flight to it: measured, about 50 at 17 renditions a shard,
 * a hole its viewers skip to the next keyframe). Pure.
 */
export function shardToMove(shards: readonly ShardLeadership[], options: { busy?: boolean } = {}): string | undefined {
  const led = new Map<string, number>();
  for (const s of shards) {
    for (const f of s.followers) if (!led.has(f)) led.set(f, 0);
    if (s.leader) led.set(s.leader, (led.get(s.leader) ?? 0) + 1);
  }
  let busiest: string | undefined;
  for (const [node, n] of led) if (busiest === undefined || n > led.get(busiest)!) busiest = node;
  if (busiest === undefined) return undefined;
  const most = led.get(busiest)!;
  const candidates = shards.filter((s) => s.leader === busiest && s.followers.some((f) => led.get(f)! <= most - 2));
  // An idle shard first; a busy one only when asked (the spread has stayed uneven a while).
  return (candidates.find((s) => s.idle) ?? (options.busy === false ? undefined : candidates[0]))?.jsStream;
}

/** A shard with no frame stored for this long is idle. */
const IDLE_MS = 5000;
/** A follower last heard from longer ago than this is not counted (nanoseconds, as the server reports it). */
const FOLLOWER_ACTIVE_NS = 2e9;
/**
 * How long the spread stays uneven before a busy shard is moved: longer than a node's loss and
 * its shards' re-elections take to settle (moving a shard then only adds to the pause).
 */
const BUSY_AFTER_MS = 60_000;

/**
 * Keeps the frame shards' leaders spread over a NATS cluster: every `intervalMs` (with jitter,
 * so that several origins seldom act together) it reads where each shard's leader is and asks
 * one shard to change leader if the spread is uneven. With one shard, or one replica (a replica
 * is its own leader), there is nothing to move and it does nothing.
 */
export class ShardLeaderBalancer {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Since when the spread has been uneven with only busy shards to move (0: it is not). */
  private unevenSince = 0;
  moves = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly layout: BusLayout,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.layout.shards.length < 2) return;
    const next = () => {
      this.timer = setTimeout(
        () => {
          void this.check().finally(() => this.timer && next());
        },
        this.intervalMs * (0.75 + Math.random() / 2),
      ).unref();
    };
    next();
  }

  /** Reads the leaders and moves one shard if that evens them out; the shard moved, if any. */
  async check(): Promise<string | undefined> {
    if (this.running || this.nc.isClosed()) return undefined;
    this.running = true;
    try {
      const jsm = await jetstreamManager(this.nc, { timeout: 5000 });
      const shards = await Promise.all(
        this.layout.shards.map(async ({ jsStream }): Promise<ShardLeadership> => {
          const info = await jsm.streams.info(jsStream);
          return {
            jsStream,
            leader: info.cluster?.leader,
            // Followers that are up to date and heard from lately: a node that just died still shows as current for a
            // while, and moving a shard towards it (while the cluster recovers from its loss) only adds an election.
            followers: (info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline && r.active < FOLLOWER_ACTIVE_NS).map((r) => r.name),
            idle: info.state.messages === 0 || Date.now() - new Date(info.state.last_ts).getTime() > IDLE_MS,
          };
        }),
      );
      // A busy shard is moved only once the spread has stayed uneven for BUSY_AFTER_MS (a node that came
      // back after a restart leads nothing until then): a short hole in a few streams, once, against a node doing
      // twice its share for good.
      const now = Date.now();
      const move = shardToMove(shards, { busy: this.unevenSince > 0 && now - this.unevenSince >= BUSY_AFTER_MS });
      if (!move) {
        this.unevenSince = shardToMove(shards) ? this.unevenSince || now : 0;
        return undefined;
      }
      this.unevenSince = 0;
      const from = shards.find((s) => s.jsStream === move)!.leader;
      await this.nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${move}`, undefined, { timeout: 5000 });
      this.moves++;
      this.log.info({ stream: move, from }, 'frame shard asked to change leader: leaders spread unevenly over the NATS nodes');
      return move;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'cannot check the frame shards leaders now');
      return undefined;
    } finally {
      this.running = false;
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
