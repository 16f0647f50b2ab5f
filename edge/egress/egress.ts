import type { Fragment } from '../../server/core/media/mp4/fmp4-muxer.ts';
import type { Frame, StreamInit } from '../../server/core/media/frame.ts';
import type { RenditionState } from '../protocol.ts';

/** The rendition's fMP4 init, built once for every egress that carries fMP4. */
export interface MuxedInit {
  init: StreamInit;
  /** The init segment (ftyp + moov). */
  segment: Buffer;
  mime: string;
  /** Track id -> timescale, for players that read `tfdt` themselves. */
  timescales: Record<number, number>;
}

/** What an egress may read of the rendition it is plugged into. */
export interface RenditionView {
  readonly stream: string;
  readonly rendition: string;
  readonly state: RenditionState;
  /** The current init, once live. */
  readonly init: MuxedInit | undefined;
  /** The current GOP as fragments from its keyframe on (empty when there is none to start from). */
  readonly gop: readonly Fragment[];
  /** The time between its last two keyframes (s), once seen. */
  readonly gopSeconds: number | undefined;
  /** An egress lost a viewer: the rendition lingers, then closes, when none is left. */
  viewerLeft(): void;
}

/**
 * A way out of a rendition to viewers (WebSocket fMP4, WHEP, next LL-HLS and a
 * recorder). The rendition owns the feed, the publication filter, the muxer, the
 * init and the GOP; it hands each egress what it needs, in order, and each egress
 * owns its viewers and its fan-out policy. Egresses never see each other.
 */
export interface Egress {
  /** The protocol label of its viewers (metrics, the node record). */
  readonly protocol: 'ws' | 'webrtc' | 'hls';
  readonly viewerCount: number;
  /** Needed without viewers of its own (a simulcast layer other viewers may be switched to): the rendition stays open. */
  readonly holding?: boolean;
  /** The rendition's state changed (connecting, offline, live, ended). */
  state?(state: RenditionState): void;
  /** A new init (a new publication, or new codec parameters): viewers restart from it. */
  init?(init: MuxedInit): void;
  /** A frame that passed the publication filter, before muxing. */
  frame?(frame: Frame): void;
  /** An fMP4 fragment: one video frame and the audio since the previous one. */
  fragment?(fragment: Fragment): void;
  /** A new publication began, or the stream ended: nothing from before continues. */
  restart?(): void;
  /** Once a second: policies that act on time (a viewer stuck behind). */
  housekeep?(now: number): void;
  /**
   * Closes every viewer and frees what the egress holds; safe to call twice.
   * `draining`: the edge is going away, so viewers are told to reconnect elsewhere.
   */
  close(draining?: { edge: string | undefined }): void;
}

/** Makes one egress for a rendition (the edge wires a factory per protocol). */
export type EgressFactory = (rendition: RenditionView) => Egress;
