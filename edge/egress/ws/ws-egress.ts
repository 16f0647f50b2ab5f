import { RelayError } from '../../../server/core/errors.ts';
import type { Fragment } from '../../../server/core/media/mp4/fmp4-muxer.ts';
import type { EdgeMetrics } from '../../edge-metrics.ts';
import { CloseCode, type ControlMessage, type RenditionState } from '../../protocol.ts';
import type { Egress, MuxedInit, RenditionView } from '../egress.ts';
import { decide, type ViewerQueueLimits } from './viewer-queue.ts';
import { frameBinary, frameBinaryInPlace } from './ws-frame.ts';
import type { Viewer } from './ws-viewer.ts';

/** The init as WebSocket viewers get it: a control message, then the framed init segment. */
interface WireInit {
  of: MuxedInit;
  control: ControlMessage;
  segment: Buffer;
}

/**
 * WebSocket fMP4 (into MSE): the lowest-latency egress. Each fragment is framed
 * once, in the headroom the muxer left in front of it, and the one buffer is
 * written to every viewer's socket: no copy and no allocation per viewer. Each
 * viewer's queue is its socket's buffer, bounded by the queue policy: a viewer
 * behind skips to the next keyframe, and one that stays behind is dropped with
 * VIEWER_TOO_SLOW.
 */
export class WsEgress implements Egress {
  readonly protocol = 'ws';
  readonly viewers = new Set<Viewer>();
  private wireInit: WireInit | undefined;
  private closed = false;

  constructor(
    private readonly view: RenditionView,
    private readonly limits: ViewerQueueLimits,
    private readonly metrics: EdgeMetrics,
  ) {}

  get viewerCount(): number {
    return this.viewers.size;
  }

  /**
   * A new viewer gets the init and the current GOP, so it starts on a keyframe at
   * once. `fromNextKeyframe`: no GOP, it starts at the next keyframe (a player
   * switching renditions already has the frames up to there). The egress owns the
   * viewer from here: it forgets it when its socket closes.
   */
  add(viewer: Viewer, fromNextKeyframe = false): void {
    if (this.closed) return viewer.close(CloseCode.GOING_AWAY, 'rendition closed');
    // "Next" in time: a consumer just started replays its last GOP, and those keyframes are in the past.
    if (fromNextKeyframe) viewer.startAfter = performance.timeOrigin + performance.now();
    this.viewers.add(viewer);
    this.metrics.viewers.ws.inc();
    viewer.ws.on('close', () => this.remove(viewer));
    viewer.control(this.status(this.view.state));
    if (this.view.state === 'live' && this.view.init) this.sendInit(viewer, this.view.init, fromNextKeyframe);
  }

  remove(viewer: Viewer): void {
    if (!this.viewers.delete(viewer)) return;
    this.metrics.viewers.ws.dec();
    this.view.viewerLeft();
  }

  state(state: RenditionState): void {
    const status = this.status(state);
    for (const v of this.viewers) v.control(status);
  }

  init(init: MuxedInit): void {
    for (const v of this.viewers) this.sendInit(v, init);
  }

  /** The per-fragment hot path: one shared buffer, a policy decision per viewer, no allocation per viewer. */
  fragment(fragment: Fragment): void {
    const wire = frameBinaryInPlace(fragment.buffer, fragment.offset);
    const now = performance.now();
    let sent = 0;
    for (const viewer of this.viewers) {
      if (!viewer.started) {
        if (!fragment.keyframe || fragment.receivedAt < viewer.startAfter) continue;
        this.started(viewer);
      }
      switch (decide(this.limits, viewer.queue, viewer.queued, fragment.keyframe, now)) {
        case 'send':
          viewer.writeWire(wire);
          sent++;
          break;
        case 'fall-behind':
          this.metrics.viewersSkipped.inc();
          break;
        case 'skip':
          break;
        case 'disconnect':
          this.dropSlow(viewer);
          break;
      }
    }
    if (sent > 0) {
      this.metrics.bytesOut.ws.inc(sent * wire.length);
      this.metrics.relayLatency.observe((performance.timeOrigin + now - fragment.receivedAt) / 1000);
    }
  }

  /** A viewer stuck behind is dropped even when no fragment comes to decide it. */
  housekeep(now: number): void {
    for (const viewer of this.viewers) {
      if (viewer.queue.skipping && now - viewer.queue.skippingSince > this.limits.maxLagMs) this.dropSlow(viewer);
    }
  }

  close(draining?: { edge: string | undefined }): void {
    if (this.closed) return;
    this.closed = true;
    for (const v of [...this.viewers]) {
      if (draining) v.control({ type: 'reconnect', reason: 'edge shutting down', edge: draining.edge });
      v.close(CloseCode.GOING_AWAY, draining ? 'edge shutting down' : 'rendition closed');
      if (this.viewers.delete(v)) this.metrics.viewers.ws.dec();
    }
  }

  private status(state: RenditionState): ControlMessage {
    return { type: 'status', state, stream: this.view.stream, rendition: this.view.rendition };
  }

  private wire(init: MuxedInit): WireInit {
    if (this.wireInit?.of !== init) {
      const { video, metadata } = init.init;
      this.wireInit = {
        of: init,
        control: { type: 'init', mime: init.mime, width: video?.width, height: video?.height, timescales: init.timescales, metadata },
        segment: frameBinary(init.segment),
      };
    }
    return this.wireInit;
  }

  private sendInit(viewer: Viewer, init: MuxedInit, fromNextKeyframe = false): void {
    const wire = this.wire(init);
    viewer.control(wire.control);
    viewer.writeWire(wire.segment);
    viewer.started = false;
    const cached = this.view.gop;
    if (cached.length === 0 || fromNextKeyframe) return;
    this.started(viewer);
    let bytes = 0;
    for (const f of cached) {
      // The header in front of a cached fragment is the one already written there: same length, same bytes.
      const bytesOnWire = frameBinaryInPlace(f.buffer, f.offset);
      viewer.writeWire(bytesOnWire);
      bytes += bytesOnWire.length;
    }
    this.metrics.bytesOut.ws.inc(bytes);
  }

  private dropSlow(viewer: Viewer): void {
    this.metrics.viewersDisconnected.inc();
    viewer.refuse(new RelayError('VIEWER_TOO_SLOW'));
    this.remove(viewer);
  }

  /** A viewer gets its first keyframe: time to first frame, once per connection. */
  private started(viewer: Viewer): void {
    viewer.started = true;
    if (viewer.firstFrameAt === 0) {
      viewer.firstFrameAt = performance.now();
      this.metrics.timeToFirstFrame.ws.observe((viewer.firstFrameAt - viewer.connectedAt) / 1000);
    }
  }
}
