import type { Frame } from '../../../server/core/media/frame.ts';
import { RelayError } from '../../../server/core/errors.ts';
import type { RtcBroadcast, RtcViewerSession } from '../../../server/core/webrtc/webrtc-engine.ts';
import type { EdgeMetrics } from '../../edge-metrics.ts';
import type { WebRtcEgress } from './webrtc-egress.ts';

/**
 * The WebRTC (WHEP) viewers of one stream on this edge: the frames of its layers (the renditions
 * WebRTC can carry, lowest first, each through its rendition's tap) go once into the engine's
 * broadcast, which fans them out (mediasoup: simulcast, each viewer's layer following its bandwidth;
 * werift: the WebRTC rendition alone). It owns its viewers' sessions from their offer on, and closes
 * with the last of them, or when a layer's rendition closes (the viewers then reconnect).
 */
export class WebRtcStream {
  /** Every session, connecting or connected. */
  private readonly sessions = new Set<RtcViewerSession>();
  /** Those connected: the viewers gauge counts them. */
  private readonly connected = new Set<RtcViewerSession>();
  private closed = false;

  constructor(
    readonly name: string,
    /** The layer that carries the audio (the WebRTC rendition). */
    readonly primaryLayer: number,
    private readonly broadcast: RtcBroadcast,
    private readonly taps: readonly WebRtcEgress[],
    private readonly metrics: EdgeMetrics,
    private readonly onClosed: (stream: WebRtcStream) => void,
  ) {
    taps.forEach((tap, layer) => tap.tap(this, layer));
  }

  get viewerCount(): number {
    return this.sessions.size;
  }

  /** A viewer's offer (it asked at `since`, performance.now() ms): the answer; media once connected. */
  async join(offerSdp: string, since: number): Promise<RtcViewerSession> {
    if (this.closed) throw new RelayError('NO_EDGE_AVAILABLE', 'the stream closed on this edge');
    const session = await this.broadcast.join(offerSdp, since);
    if (this.closed) {
      await session.close();
      throw new RelayError('NO_EDGE_AVAILABLE', 'the stream closed on this edge');
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
      if (this.sessions.size === 0) this.close();
      for (const tap of this.taps) tap.viewerLeft();
    });
    return session;
  }

  frame(frame: Frame, layer: number): void {
    this.broadcast.push(frame, layer);
  }

  restart(layer: number): void {
    this.broadcast.reset(layer);
  }

  /** Ends every viewer and the broadcast; the layers' renditions linger, then close. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    for (const tap of this.taps) tap.untap(this);
    const sessions = [...this.sessions];
    this.sessions.clear();
    this.metrics.viewers.webrtc.dec(this.connected.size);
    this.connected.clear();
    for (const session of sessions) void session.close();
    this.broadcast.close();
    for (const tap of this.taps) tap.viewerLeft();
  }
}
