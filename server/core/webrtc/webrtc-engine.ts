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

/** A viewer's peer connection (WHEP): the answer, then media sent as RTP. */
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

/**
 * The one small interface between the relay and a WebRTC implementation. werift
 * is the engine now (see ../shared/docs/field-notes.md on why not mediasoup here);
 * another could be slotted in behind this.
 */
export interface WebRtcEngine {
  /** Answers a publisher's offer: receive-only H.264 and Opus. Throws a RelayError for an offer it cannot take. */
  ingest(offerSdp: string): Promise<IngestSession>;
  /** Answers a viewer's offer: send-only H.264 and Opus. Throws a RelayError for an offer it cannot take. */
  egress(offerSdp: string): Promise<EgressSession>;
  /** The first peer connection in a process is slow (key generation): make it at start. */
  warmUp(): Promise<void>;
}
