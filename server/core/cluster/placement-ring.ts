import { createHash } from 'node:crypto';

/** An edge as placement sees it (from its membership heartbeat). */
export interface EdgeMember {
  id: string;
  /** Public base URL viewers use, e.g. http://10.0.0.5:8080 */
  url: string;
  /** Viewers it takes at most; also its weight in the balance. */
  capacity: number;
  /** Viewers it serves now. */
  load: number;
  /** Where it is (`cluster.region`): viewers are placed in their own region first. Empty or absent: no region. */
  region?: string;
}

export interface PlacementOptions {
  /** Points per edge on the ring: more points, more even primaries. */
  pointsPerEdge?: number;
  /** 1 + eps: no edge takes more than ceil(balanceFactor x its fair share) of the viewers. */
  balanceFactor?: number;
  /**
   * Viewers an edge may always take before a stream spills past it, whatever the
   * average. At low load the pure bound is 1-2 viewers per edge and would smear a
   * lone stream over every edge (each consuming it); this keeps it on its home edge.
   */
  spillAfter?: number;
}

/** 32 bits of SHA-256: stable across processes and versions, well mixed. */
export function ringHash(value: string): number {
  return createHash('sha256').update(value).digest().readUInt32BE(0);
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016).
 * A stream's viewers go to the first edge clockwise from the stream's hash that
 * is under its bound; a popular stream spills onto the next edges, each of
 * which then consumes it once. Pure and deterministic: the same membership gives
 * the same answer on every node, whatever order it was listed in.
 */
export class PlacementRing {
  readonly members: readonly EdgeMember[];
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;
  private readonly balanceFactor: number;
  private readonly spillAfter: number;
  private readonly totalCapacity: number;
  private readonly totalLoad: number;

  constructor(members: readonly EdgeMember[], options: PlacementOptions = {}) {
    const pointsPerEdge = options.pointsPerEdge ?? 160;
    this.balanceFactor = options.balanceFactor ?? 1.25;
    this.spillAfter = options.spillAfter ?? 0;
    if (this.balanceFactor < 1) throw new RangeError('balanceFactor must be at least 1');
    if (members.length > 0xffff) throw new RangeError('too many edges');
    this.members = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const entries: { hash: number; owner: number }[] = [];
    this.members.forEach((m, owner) => {
      for (let i = 0; i < pointsPerEdge; i++) entries.push({ hash: ringHash(`${m.id}#${i}`), owner });
    });
    entries.sort((a, b) => a.hash - b.hash || a.owner - b.owner);
    this.points = Uint32Array.from(entries, (e) => e.hash);
    this.owners = Uint16Array.from(entries, (e) => e.owner);
    this.totalCapacity = this.members.reduce((n, m) => n + Math.max(0, m.capacity), 0);
    this.totalLoad = this.members.reduce((n, m) => n + Math.max(0, m.load), 0);
  }

  /** The most an edge may carry once one more viewer is placed. */
  bound(member: EdgeMember, totalLoad = this.totalLoad): number {
    if (this.totalCapacity <= 0) return 0;
    const share = ((totalLoad + 1) * Math.max(0, member.capacity)) / this.totalCapacity;
    return Math.min(member.capacity, Math.max(this.spillAfter, Math.ceil(this.balanceFactor * share)));
  }

  /** Edges in ring order from the stream's position, each once. */
  *walk(stream: string): Generator<EdgeMember> {
    const n = this.points.length;
    if (n === 0) return;
    const seen = new Set<number>();
    let i = lowerBound(this.points, ringHash(stream));
    for (let step = 0; step < n && seen.size < this.members.length; step++, i++) {
      const owner = this.owners[i % n]!;
      if (seen.has(owner)) continue;
      seen.add(owner);
      yield this.members[owner]!;
    }
  }

  /** The stream's home edge, ignoring load (what moves when membership changes). */
  primary(stream: string): EdgeMember | undefined {
    const first = this.walk(stream).next();
    return first.done ? undefined : first.value;
  }

  /**
   * Where a new viewer of `stream` goes: the first edge from the stream's position
   * with room under its bound. `loads` overrides the members' loads (a router's
   * own view, counting viewers it sent since the last heartbeat).
   */
  place(stream: string, options: PlaceOptions = {}): EdgeMember | undefined {
    const { exclude, loads } = options;
    let total = options.totalLoad ?? this.totalLoad;
    if (loads && options.totalLoad === undefined) {
      total = 0;
      for (const m of this.members) total += loads.get(m.id) ?? m.load;
    }
    for (const m of this.walk(stream)) {
      if (exclude?.has(m.id)) continue;
      const load = loads?.get(m.id) ?? m.load;
      if (load < this.bound(m, total)) return m;
    }
    return undefined;
  }
}

export interface PlaceOptions {
  /** Edges not to use (they failed this viewer). */
  exclude?: ReadonlySet<string>;
  /** Loads that override the members' own (a router's view, counting viewers it sent since the last heartbeat). */
  loads?: ReadonlyMap<string, number>;
  /** The members' total load under `loads`, when the caller keeps it (else summed here, once per call). */
  totalLoad?: number;
}

function lowerBound(sorted: Uint32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
