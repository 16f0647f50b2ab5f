import { PlacementRing, type EdgeMember, type PlaceOptions, type PlacementOptions } from './placement-ring.ts';

/**
 * Viewers placed by region, then by the ring: a viewer goes to an edge of its own region, by
 * consistent hashing with bounded loads among that region's edges alone (so a stream's viewers in
 * one region gather on a few edges there, each consuming the stream once, and the bound holds per
 * region); when its region has no edge with room, or it has no region, to any edge by the ring of
 * all. Pure: the same members give the same answers on every node.
 */
export class RegionRouter {
  private readonly rings = new Map<string, PlacementRing>();
  private readonly everywhere: PlacementRing;

  constructor(
    readonly members: readonly EdgeMember[],
    options: PlacementOptions = {},
  ) {
    this.everywhere = new PlacementRing(members, options);
    const byRegion = new Map<string, EdgeMember[]>();
    for (const m of members) if (m.region) byRegion.set(m.region, [...(byRegion.get(m.region) ?? []), m]);
    for (const [region, edges] of byRegion) this.rings.set(region, new PlacementRing(edges, options));
  }

  /** The regions that have edges. */
  get regions(): string[] {
    return [...this.rings.keys()].sort();
  }

  /** The ring of one region's edges (undefined: no edge there). */
  ring(region: string): PlacementRing | undefined {
    return this.rings.get(region);
  }

  /**
   * Where a new viewer of `stream` from `region` goes. `totalLoad`, if given, is the region's
   * total under `loads` (the simulation keeps it); the fallback to all edges sums its own.
   */
  place(stream: string, region: string | undefined, options: PlaceOptions = {}): EdgeMember | undefined {
    const local = region ? this.rings.get(region) : undefined;
    const here = local?.place(stream, options);
    if (here) return here;
    return this.everywhere.place(stream, { exclude: options.exclude, loads: options.loads });
  }
}
