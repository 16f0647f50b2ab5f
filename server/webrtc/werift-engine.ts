import { RTCPeerConnection, RtpHeader, RtpPacket, useH264, useOPUS, usePLI, useNACK, type PeerConfig, type RTCRtpSender } from 'werift';
import { RelayError } from '../errors.ts';
import type { RtpPacketLike } from '../media/rtp/h264-depacketizer.ts';
import type { EgressSession, IceSettings, IngestSession, RtpOut, WebRtcEngine } from './webrtc-engine.ts';

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
    let pli: (() => void) | undefined;
    pc.ontrack = ({ track, transceiver }) => {
      const handlers = track.kind === 'video' ? video : audio;
      track.onReceiveRtp.subscribe((rtp) => {
        const packet = asPacket(rtp);
        for (const h of handlers) h(packet);
      });
      if (track.kind === 'video') pli = () => void transceiver.receiver.sendRtcpPLI(track.ssrc!).catch(() => {});
    };
    const life = lifecycle(pc);
    const answer = await negotiate(pc, offerSdp, 'recvonly');
    return {
      answer,
      onVideo: (h) => video.push(h),
      onAudio: (h) => audio.push(h),
      onClosed: life.onClosed,
      requestKeyframe: () => pli?.(),
      close: life.close,
    };
  }

  async egress(offerSdp: string): Promise<EgressSession> {
    const pc = new RTCPeerConnection(this.peerConfig());
    const life = lifecycle(pc);
    const answer = await negotiate(pc, offerSdp, 'sendonly');
    const sender = (kind: 'video' | 'audio') => pc.getTransceivers().find((t) => t.kind === kind && t.codecs.length > 0)?.sender;
    const video = sender('video');
    const audio = sender('audio');
    return {
      answer,
      onConnected: life.onConnected,
      onClosed: life.onClosed,
      onKeyframeRequest: (h) => void video?.onPictureLossIndication.subscribe(h),
      sendVideo: video ? contiguous(video) : () => {},
      sendAudio: audio ? contiguous(audio) : () => {},
      close: life.close,
    };
  }
}

/** Connected and closed events of a peer connection, and a close that fires the latter once. */
function lifecycle(pc: RTCPeerConnection) {
  const connected: (() => void)[] = [];
  const closed: (() => void)[] = [];
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    for (const h of closed) h();
  };
  // 'disconnected' can pass (a consent check missed on a busy network): only failed or closed ends a session.
  pc.connectionStateChange.subscribe((state) => {
    if (state === 'connected') for (const h of connected.splice(0)) h();
    if (state === 'failed' || state === 'closed') end();
  });
  return {
    onConnected: (h: () => void) => void connected.push(h),
    onClosed: (h: () => void) => void closed.push(h),
    close: async () => {
      end();
      await pc.close().catch(() => {});
    },
  };
}

/**
 * Applies the remote offer, turns every usable transceiver to `direction`, and
 * answers with every ICE candidate gathered (no trickle). Refusals: SDP_INVALID
 * for an offer werift cannot read, CODEC_UNSUPPORTED when it has neither H.264 nor Opus.
 */
async function negotiate(pc: RTCPeerConnection, offerSdp: string, direction: 'recvonly' | 'sendonly'): Promise<string> {
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
  for (const t of pc.getTransceivers()) t.setDirection(direction);
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
  return pc.localDescription!.sdp;
}

/** werift's packet for one of ours, made once and shared (werift clones before it rewrites a header). */
const native = new WeakMap<RtpOut, RtpPacket>();

/**
 * Sends through `sender`, keeping the viewer's sequence numbers contiguous when the
 * packets skip ahead (a viewer held back until a keyframe). The timestamp step is
 * the real one, so that timestamps stay on the media clock (A/V sync by sender reports).
 */
function contiguous(sender: RTCRtpSender): (p: RtpOut) => void {
  let lastSeq: number | undefined;
  let lastTs = 0;
  return (p) => {
    if (lastSeq !== undefined && p.sequenceNumber !== ((lastSeq + 1) & 0xffff)) {
      sender.replaceRTP({ sequenceNumber: p.sequenceNumber, timestamp: p.timestamp }, false, (p.timestamp - lastTs) >>> 0);
    }
    lastSeq = p.sequenceNumber;
    lastTs = p.timestamp;
    let packet = native.get(p);
    if (!packet) {
      packet = new RtpPacket(new RtpHeader({ sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, payloadType: 96 }), p.payload);
      native.set(p, packet);
    }
    sender.sendRtp(packet).catch(() => {});
  };
}
