import type { Rendition } from './rendition/rendition.ts';

/** Makes a rendition of this stream; it reports each viewer leaving. */
export type RenditionMaker = (rendition: string, viewerLeft: (rendition: Rendition) => void) => Rendition;

/**
 * One stream on one edge: the renditions its viewers watch, each made on the
 * first viewer's arrival and closed a while after the last one leaves (its
 * consumer and GOP stay warm for a viewer switching or coming back). Closing the
 * stream closes its renditions, their egresses and their viewers.
 */
export class EdgeStream {
  private readonly renditions = new Map<string, Rendition>();
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  private closing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly make: RenditionMaker,
    private readonly lingerMs: number,
    /** The stream's last rendition closed: the edge forgets the stream. */
    private readonly emptied: (stream: EdgeStream) => void,
  ) {}

  /** The rendition, made and started if needed. Undefined once the stream is closing. */
  rendition(name: string): Rendition | undefined {
    if (this.closing) return undefined;
    clearTimeout(this.lingering.get(name));
    this.lingering.delete(name);
    let rendition = this.renditions.get(name);
    if (!rendition) {
      rendition = this.make(name, (r) => this.viewerLeft(r));
      this.renditions.set(name, rendition);
      rendition.start();
      // Made for a viewer who may never arrive (a WHEP session that fails to connect): linger from the start.
      this.viewerLeft(rendition);
    }
    return rendition;
  }

  /** The rendition if it exists; never makes one. */
  find(name: string): Rendition | undefined {
    return this.renditions.get(name);
  }

  all(): IterableIterator<Rendition> {
    return this.renditions.values();
  }

  get viewerCount(): number {
    let n = 0;
    for (const r of this.renditions.values()) n += r.viewerCount;
    return n;
  }

  /** Closes every rendition (and their viewers). Safe to call twice. */
  close(draining?: { edge: string | undefined }): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.lingering.values()) clearTimeout(t);
      this.lingering.clear();
      const renditions = [...this.renditions.values()];
      this.renditions.clear();
      await Promise.all(renditions.map((r) => r.close(draining)));
    })();
    return this.closing;
  }

  private viewerLeft(rendition: Rendition): void {
    if (this.closing || rendition.inUse || this.renditions.get(rendition.rendition) !== rendition) return;
    const name = rendition.rendition;
    clearTimeout(this.lingering.get(name));
    this.lingering.set(
      name,
      setTimeout(() => {
        this.lingering.delete(name);
        if (rendition.inUse || this.renditions.get(name) !== rendition) return;
        this.renditions.delete(name);
        void rendition.close();
        if (this.renditions.size === 0) this.emptied(this);
      }, this.lingerMs).unref(),
    );
  }
}
