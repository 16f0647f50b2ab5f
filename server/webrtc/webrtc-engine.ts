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

/**
 * The one small interface between the relay and a WebRTC implementation. werift
 * is the engine now (see ../shared/docs/field-notes.md on why not mediasoup here);
 * another could be slotted in behind this.
 */
export interface WebRtcEngine {
  /** Answers a publisher's offer: receive-only H.264 and Opus. Throws a RelayError for an offer it cannot take. */
  ingest(offerSdp: string): Promise<IngestSession>;
  /** The first peer connection in a process is slow (key generation): make it at start. */
  warmUp(): Promise<void>;
}
