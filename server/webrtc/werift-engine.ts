import { RTCPeerConnection, useH264, useOPUS, usePLI, useNACK, type PeerConfig, type RtpPacket } from 'werift';
import { RelayError } from '../errors.ts';
import type { RtpPacketLike } from '../media/rtp/h264-depacketizer.ts';
import type { IceSettings, IngestSession, WebRtcEngine } from './webrtc-engine.ts';

/** How long an answer may wait for ICE candidates to be gathered (no trickle: they go in the answer). */
const GATHER_TIMEOUT_MS = 3000;

const asPacket = (rtp: RtpPacket): RtpPacketLike => ({ sequenceNumber: rtp.header.sequenceNumber, timestamp: rtp.header.timestamp, marker: rtp.header.marker, payload: rtp.payload });

/**
 * werift behind the WebRtcEngine interface: the only file that knows werift's
 * peer connection. Codecs are passed explicitly (its default video codec is VP8
 * only), and no transport-wide-cc extension on the receive side: with it, Chromium's
 * send rate collapsed (field notes).
 */
export class WeriftEngine implements WebRtcEngine {
  constructor(private readonly ice: IceSettings) {}

  private peerConfig(): Partial<PeerConfig> {
    return {
      codecs: {
        video: [useH264({ rtcpFeedback: [usePLI(), useNACK()] })],
        audio: [useOPUS()],
      },
      headerExtensions: { video: [], audio: [] },
      iceServers: this.ice.iceServers,
      icePortRange: this.ice.portRange,
      iceAdditionalHostAddresses: this.ice.announcedAddresses.length > 0 ? this.ice.announcedAddresses : undefined,
    };
  }

  async warmUp(): Promise<void> {
    const pc = new RTCPeerConnection(this.peerConfig());
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await pc.close();
  }

  async ingest(offerSdp: string): Promise<IngestSession> {
    const pc = new RTCPeerConnection(this.peerConfig());
    const video: ((p: RtpPacketLike) => void)[] = [];
    const audio: ((p: RtpPacketLike) => void)[] = [];
    const closed: (() => void)[] = [];
    let pli: (() => void) | undefined;
    pc.ontrack = ({ track, transceiver }) => {
      const handlers = track.kind === 'video' ? video : audio;
      track.onReceiveRtp.subscribe((rtp) => {
        const packet = asPacket(rtp);
        for (const h of handlers) h(packet);
      });
      if (track.kind === 'video') pli = () => void transceiver.receiver.sendRtcpPLI(track.ssrc!).catch(() => {});
    };
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      for (const h of closed) h();
    };
    // 'disconnected' can pass (a consent check missed on a busy network): only failed or closed ends a session.
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'failed' || state === 'closed') end();
    });
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    } catch (err) {
      await pc.close().catch(() => {});
      throw new RelayError('SDP_INVALID', (err as Error).message);
    }
    const kinds = pc.getTransceivers().filter((t) => t.codecs.length > 0).map((t) => t.kind);
    if (!kinds.includes('video') && !kinds.includes('audio')) {
      await pc.close().catch(() => {});
      throw new RelayError('CODEC_UNSUPPORTED', 'the offer has neither H.264 video nor Opus audio');
    }
    for (const t of pc.getTransceivers()) t.setDirection('recvonly');
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
        pc.iceGatheringStateChange.subscribe((state) => {
          if (state === 'complete') {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }
    const answer = pc.localDescription!.sdp;
    return {
      answer,
      onVideo: (h) => video.push(h),
      onAudio: (h) => audio.push(h),
      onClosed: (h) => closed.push(h),
      requestKeyframe: () => pli?.(),
      close: async () => {
        end();
        await pc.close().catch(() => {});
      },
    };
  }
}
