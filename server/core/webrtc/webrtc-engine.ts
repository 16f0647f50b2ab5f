import type { Frame } from '../media/frame.ts';
import type { RtpPacketLike } from '../media/rtp/h264-depacketizer.ts';

/** ICE settings every engine takes (config `webrtc`). */
export interface IceSettings {
  /** UDP ports for media, [min, max]; each peer connection takes one or two. */
  portRange?: [number, number];
  /** Addresses to announce (servers behind NAT): candidates carry these. */
  announcedAddresses: string[];
  /** STUN and TURN servers, as RTCIceServer. */
  iceServers: { urls: string; username?: string; credential?: string }[];
}

/** A publisher's peer connection (WHIP): the answer, then its media as RTP. */
export interface IngestSession {
  readonly answer: string;
  /** H.264 video packets and Opus audio packets, as they arrive. */
  onVideo(handler: (packet: RtpPacketLike) => void): void;
  onAudio(handler: (packet: RtpPacketLike) => void): void;
  /** The connection failed or closed. */
  onClosed(handler: () => void): void;
  /** Asks the publisher for a keyframe (RTCP PLI). */
  requestKeyframe(): void;
  close(): Promise<void>;
}

/** An RTP packet to send. One object serves every viewer: an engine must not change it. */
export interface RtpOut {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
  /**
   * The wall-clock time (ms since the epoch) this timestamp stands for: the stream's
   * media clock anchored to ingest time. RTCP sender reports map RTP time to it, so
   * that a player syncs audio with video and knows how old the picture is.
   */
  wallMs: number;
}

/** A viewer's peer connection (WHEP) as the werift engine's own fan-out drives it: media sent as RTP, per viewer. */
export interface EgressSession {
  readonly answer: string;
  /** ICE and DTLS are up: media sent from now on arrives. */
  onConnected(handler: () => void): void;
  /** The connection failed or closed. */
  onClosed(handler: () => void): void;
  /** The viewer lost a picture and asks for a keyframe (RTCP PLI). */
  onKeyframeRequest(handler: () => void): void;
  /**
   * Sends H.264 or Opus packets. Packets may skip ahead (a viewer held back until a
   * keyframe): the engine keeps the viewer's sequence numbers contiguous.
   */
  sendVideo(packet: RtpOut): void;
  sendAudio(packet: RtpOut): void;
  close(): Promise<void>;
}

/** A WHEP viewer of a broadcast: the answer, then its connection's life. */
export interface RtcViewerSession {
  readonly answer: string;
  /** ICE and DTLS are up: the viewer receives the broadcast from now on. */
  onConnected(handler: () => void): void;
  /** The connection failed or closed, or the engine lost it (a worker died): the player reconnects. */
  onClosed(handler: () => void): void;
  /** Ends the session; safe to call twice. */
  close(): Promise<void>;
}

export interface RtcBroadcastOptions {
  /**
   * Video layers, lowest first: the renditions of a stream that WebRTC can carry. An engine with
   * simulcast sends them as one video track whose layer follows each viewer's bandwidth; one without
   * sends `primaryLayer` alone.
   */
  layers: number;
  /** The layer whose rendition carries the Opus audio (the WebRTC rendition); audio comes from it. */
  primaryLayer: number;
  /** Shortest time between two keyframe requests a viewer's PLI causes. */
  keyframeRequestMinMs: number;
  /**
   * What the top layer needs, video and audio (kbit/s), when the ladder says: an engine with congestion
   * control starts each viewer's estimate a little above it and holds it near it.
   */
  topLayerKbps?: number;
  /** Viewers wait for a keyframe of this layer: a source that makes them on demand (a WHIP publisher) is asked. */
  wantKeyframe?: (layer: number) => void;
  /** A viewer's first picture went out: ms since it asked to watch. */
  firstPicture?: (ms: number) => void;
  /** Media payload bytes sent to viewers (once per frame for all of them). */
  sent?: (bytes: number) => void;
}

/**
 * One stream's media for WebRTC viewers, sent once: the frames of its layers go in, and the engine
 * fans them out, in Node (werift: one shared packet per viewer) or in its own worker (mediasoup).
 */
export interface RtcBroadcast {
  /** One frame of a layer's rendition: H.264 without B-frames, or Opus (others are not for WebRTC). */
  push(frame: Frame, layer: number): void;
  /** A layer's new publication or end: nothing of it before continues. */
  reset(layer: number): void;
  /** A viewer's offer: the answer (every candidate in it), and the viewer gets media once connected. Throws a RelayError for an offer it cannot take. */
  join(offerSdp: string, since: number): Promise<RtcViewerSession>;
  /** Ends every viewer and frees what the broadcast holds; safe to call twice. */
  close(): void;
}

/**
 * The one interface between the relay and a WebRTC implementation: WHIP ingest on origins,
 * and broadcasts for WHEP viewers on edges. werift does both in Node; mediasoup's C++ workers
 * fan out to viewers (and leave ingest to werift: see the README's WebRTC section).
 */
export interface WebRtcEngine {
  readonly name: 'werift' | 'mediasoup';
  /** Sends a stream's layers as simulcast, each viewer's layer following its bandwidth (else the primary layer alone). */
  readonly simulcast: boolean;
  /** Answers a publisher's offer: receive-only H.264 and Opus. Throws a RelayError for an offer it cannot take. */
  ingest(offerSdp: string): Promise<IngestSession>;
  /** A stream's broadcast (one per stream that has WebRTC viewers). */
  broadcast(options: RtcBroadcastOptions): RtcBroadcast;
  /** The first peer connection in a process is slow (key generation): make it at start. */
  warmUp(): Promise<void>;
  /** Stops what the engine runs (workers); broadcasts end. */
  close(): Promise<void>;
}
