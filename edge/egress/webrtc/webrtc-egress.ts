import type { Frame } from '../../../server/core/media/frame.ts';
import type { EdgeMetrics } from '../../edge-metrics.ts';
import type { Egress, RenditionView } from '../egress.ts';
import { RtpFanout, type RtpSink } from './rtp-fanout.ts';

/** A WebRTC viewer as the egress holds it: where its RTP goes, and how to end its session. */
export interface RtcViewer {
  readonly sink: RtpSink;
  /** Ends the viewer's session (its peer connection); the session then leaves the egress. */
  end(why: string): void;
}

export interface WebRtcEgressOptions {
  keyframeRequestMinMs: number;
  /** Asks the source for a keyframe (a WHIP publisher makes them on demand; transcoded rungs have one every second). */
  wantKeyframe?: () => void;
}

/**
 * WebRTC (WHEP) viewers of one rendition: each frame is packetized once (RFC 6184,
 * only while someone watches) and the same RTP packets go to every viewer. The
 * WHEP endpoint negotiates the session and hands the viewer over once ICE and DTLS
 * are up; from then on this egress owns it, and closing the egress ends it.
 */
export class WebRtcEgress implements Egress {
  readonly protocol = 'webrtc';
  private readonly fanout: RtpFanout;
  private readonly viewers = new Map<RtpSink, RtcViewer>();
  private closed = false;

  constructor(
    private readonly view: RenditionView,
    options: WebRtcEgressOptions,
    private readonly metrics: EdgeMetrics,
  ) {
    this.fanout = new RtpFanout({
      keyframeRequestMinMs: options.keyframeRequestMinMs,
      wantKeyframe: options.wantKeyframe,
      firstPicture: (ms) => metrics.timeToFirstFrame.webrtc.observe(ms / 1000),
      sent: (bytes) => metrics.bytesOut.webrtc.inc(bytes),
    });
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** A viewer whose connection is up; it asked to watch at `since` (performance.now() ms). False when the egress is closed. */
  add(viewer: RtcViewer, since?: number): boolean {
    if (this.closed) return false;
    this.viewers.set(viewer.sink, viewer);
    this.fanout.add(viewer.sink, since);
    this.metrics.viewers.webrtc.inc();
    return true;
  }

  remove(viewer: RtcViewer): void {
    if (this.viewers.get(viewer.sink) !== viewer) return;
    this.viewers.delete(viewer.sink);
    this.fanout.remove(viewer.sink);
    this.metrics.viewers.webrtc.dec();
    this.view.viewerLeft();
  }

  /** The viewer lost a picture (RTCP PLI). */
  keyframeRequested(viewer: RtcViewer): void {
    this.fanout.keyframeRequested(viewer.sink);
  }

  frame(frame: Frame): void {
    this.fanout.push(frame);
  }

  restart(): void {
    this.fanout.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const viewer of [...this.viewers.values()]) {
      this.viewers.delete(viewer.sink);
      this.fanout.remove(viewer.sink);
      this.metrics.viewers.webrtc.dec();
      viewer.end('the rendition closed');
    }
  }
}
