import type { Frame } from '../../../server/core/media/frame.ts';
import { RelayError } from '../../../server/core/errors.ts';
import type { RtcBroadcast, RtcViewerSession } from '../../../server/core/webrtc/webrtc-engine.ts';
import type { EdgeMetrics } from '../../edge-metrics.ts';
import type { Egress, RenditionView } from '../egress.ts';

/**
 * WebRTC (WHEP) viewers of one rendition. The rendition's frames go once into the engine's
 * broadcast, which fans them out (in Node with werift, in a C++ worker with mediasoup). The egress
 * owns its viewers' sessions from their offer on: closing it ends them, and a viewer that leaves
 * tells the rendition, which lingers, then closes, when nobody is left.
 */
export class WebRtcEgress implements Egress {
  readonly protocol = 'webrtc';
  /** Every session, connecting or connected: a rendition with a viewer still connecting stays open. */
  private readonly sessions = new Set<RtcViewerSession>();
  /** Those connected: the viewers gauge counts them. */
  private readonly connected = new Set<RtcViewerSession>();
  private closed = false;

  constructor(
    private readonly view: RenditionView,
    private readonly broadcast: RtcBroadcast,
    private readonly metrics: EdgeMetrics,
  ) {}

  get viewerCount(): number {
    return this.sessions.size;
  }

  /** A viewer's offer (it asked at `since`, performance.now() ms): the answer; media once connected. */
  async join(offerSdp: string, since: number): Promise<RtcViewerSession> {
    if (this.closed) throw new RelayError('NO_EDGE_AVAILABLE', 'the rendition closed');
    const session = await this.broadcast.join(offerSdp, since);
    if (this.closed) {
      await session.close();
      throw new RelayError('NO_EDGE_AVAILABLE', 'the rendition closed');
    }
    this.sessions.add(session);
    session.onConnected(() => {
      if (!this.sessions.has(session)) return;
      this.connected.add(session);
      this.metrics.viewers.webrtc.inc();
    });
    session.onClosed(() => {
      if (!this.sessions.delete(session)) return;
      if (this.connected.delete(session)) this.metrics.viewers.webrtc.dec();
      this.view.viewerLeft();
    });
    return session;
  }

  frame(frame: Frame): void {
    this.broadcast.push(frame);
  }

  restart(): void {
    this.broadcast.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const sessions = [...this.sessions];
    this.sessions.clear();
    this.metrics.viewers.webrtc.dec(this.connected.size);
    this.connected.clear();
    for (const session of sessions) void session.close();
    this.broadcast.close();
  }
}
