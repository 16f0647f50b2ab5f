import type { Frame } from '../../../server/core/media/frame.ts';
import type { Egress, RenditionView } from '../egress.ts';
import type { WebRtcStream } from './webrtc-stream.ts';

/**
 * A rendition's tap for WebRTC: idle until a stream's WebRTC viewers use the rendition as one of
 * their layers, then each frame goes on to that stream's broadcast (WebRtcStream), once for every
 * viewer. While tapped, every layer stays open while someone watches, whichever layer each viewer
 * receives; the viewers count on the primary layer (the WebRTC rendition).
 */
export class WebRtcEgress implements Egress {
  readonly protocol = 'webrtc';
  private stream: WebRtcStream | undefined;
  private layer = -1;

  constructor(private readonly view: RenditionView) {}

  /** The stream's viewers, counted on its primary layer (the WebRTC rendition) alone. */
  get viewerCount(): number {
    return this.stream && this.layer === this.stream.primaryLayer ? this.stream.viewerCount : 0;
  }

  get holding(): boolean {
    return this.stream !== undefined && this.stream.viewerCount > 0;
  }

  /** Carries layer `layer` of the stream's broadcast from now on. */
  tap(stream: WebRtcStream, layer: number): void {
    this.stream = stream;
    this.layer = layer;
  }

  /** The stream's WebRTC viewers are gone. */
  untap(stream: WebRtcStream): void {
    if (this.stream === stream) this.stream = undefined;
  }

  /** A viewer of the stream left: the rendition lingers, then closes, when nobody is left. */
  viewerLeft(): void {
    this.view.viewerLeft();
  }

  frame(frame: Frame): void {
    this.stream?.frame(frame, this.layer);
  }

  restart(): void {
    this.stream?.restart(this.layer);
  }

  /** The rendition closes (the edge drains or stops): the stream's viewers end, and reconnect. */
  close(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.close();
  }
}
