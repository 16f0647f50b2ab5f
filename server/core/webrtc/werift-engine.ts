import type { Socket } from 'node:dgram';
import {
  GenericNack,
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RTCPeerConnection,
  RtcpTransportLayerFeedback,
  RtpPacket,
  useH264,
  useOPUS,
  usePLI,
  useNACK,
  type PeerConfig,
  type RTCRtpSender,
} from 'werift';
import { RTP_HEADER_BYTES, SrtpProtector, writeRtpHeader } from '../media/rtp/srtp-protector.ts';
import { RelayError } from '../errors.ts';
import type { RtpPacketLike } from '../media/rtp/h264-depacketizer.ts';
import type { Frame } from '../media/frame.ts';
import { RtpFanout } from './rtp-fanout.ts';
import type { EgressSession, IceSettings, IngestSession, RtcBroadcast, RtcBroadcastOptions, RtcViewerSession, RtpOut, WebRtcEngine } from './webrtc-engine.ts';

/** How long an answer may wait for ICE candidates to be gathered (no trickle: they go in the answer). */
const GATHER_TIMEOUT_MS = 3000;

const asPacket = (rtp: RtpPacket): RtpPacketLike => ({
  sequenceNumber: rtp.header.sequenceNumber,
  timestamp: rtp.header.timestamp,
  marker: rtp.header.marker,
  payload: rtp.payload,
});

/**
 * werift behind the WebRtcEngine interface: the only file that knows werift's
 * peer connection. Codecs are passed explicitly (its default video codec is VP8
 * only), and no transport-wide-cc extension on the receive side: with it, Chromium's
 * send rate collapsed (field notes).
 */
export class WeriftEngine implements WebRtcEngine {
  readonly name = 'werift';
  readonly simulcast = false;

  constructor(private readonly ice: IceSettings) {}

  broadcast(options: RtcBroadcastOptions): RtcBroadcast {
    return new WeriftBroadcast(this, options);
  }

  async close(): Promise<void> {
    // Peer connections belong to their sessions, which their owners close.
  }

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
      sendVideo: video ? sendThrough(new ViewerRtpSender(video)) : () => {},
      sendAudio: audio ? sendThrough(new ViewerRtpSender(audio)) : () => {},
      close: life.close,
    };
  }
}

/**
 * A broadcast fanned out in Node: each frame of the primary layer packetized once (RtpFanout) and
 * the same packets sent to every viewer's peer connection through its own SRTP sender.
 */
class WeriftBroadcast implements RtcBroadcast {
  private readonly fanout: RtpFanout;
  private readonly sessions = new Set<EgressSession>();
  private closed = false;

  private readonly primary: number;

  constructor(
    private readonly engine: WeriftEngine,
    options: RtcBroadcastOptions,
  ) {
    this.primary = options.primaryLayer;
    const { wantKeyframe } = options;
    this.fanout = new RtpFanout({ ...options, wantKeyframe: wantKeyframe && (() => wantKeyframe(options.primaryLayer)) });
  }

  /** The primary layer alone: werift has no simulcast. */
  push(frame: Frame, layer: number): void {
    if (layer === this.primary) this.fanout.push(frame);
  }

  reset(layer: number): void {
    if (layer === this.primary) this.fanout.reset();
  }

  async join(offerSdp: string, since: number): Promise<RtcViewerSession> {
    const session = await this.engine.egress(offerSdp);
    if (this.closed) {
      await session.close();
      throw new RelayError('NO_EDGE_AVAILABLE', 'the rendition closed');
    }
    this.sessions.add(session);
    // Media only once ICE and DTLS are up: a keyframe sent before would be lost.
    session.onConnected(() => {
      if (!this.sessions.has(session)) return;
      this.fanout.add(session, since);
      session.onKeyframeRequest(() => this.fanout.keyframeRequested(session));
    });
    session.onClosed(() => {
      this.sessions.delete(session);
      this.fanout.remove(session);
    });
    return {
      answer: session.answer,
      onConnected: (h) => session.onConnected(h),
      onClosed: (h) => session.onClosed(h),
      close: () => session.close(),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const session of [...this.sessions]) void session.close();
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
  const kinds = pc
    .getTransceivers()
    .filter((t) => t.codecs.length > 0)
    .map((t) => t.kind);
  if (!kinds.includes('video') && !kinds.includes('audio')) {
    await pc.close().catch(() => {});
    throw new RelayError('CODEC_UNSUPPORTED', 'the offer has neither H.264 video nor Opus audio');
  }
  for (const t of pc.getTransceivers()) t.setDirection(direction);
  try {
    await pc.setLocalDescription(await pc.createAnswer());
  } catch (err) {
    // werift read the offer but cannot answer it (a transceiver without a mid, ...).
    await pc.close().catch(() => {});
    throw new RelayError('SDP_INVALID', (err as Error).message);
  }
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

/** Packets a viewer's sender keeps for retransmission on NACK (about 2 s of 2 Mbit/s video). */
const HISTORY = 512;
/** Unix epoch to NTP epoch (1900), seconds. */
const NTP_EPOCH_OFFSET_S = 2_208_988_800;

/** A 64-bit NTP timestamp from ms since the Unix epoch (werift's own fills the fraction with decimal digits). */
export function ntpFromMs(ms: number): bigint {
  const seconds = ms / 1000 + NTP_EPOCH_OFFSET_S;
  const whole = Math.floor(seconds);
  return (BigInt(whole) << 32n) | BigInt(Math.floor((seconds - whole) * 2 ** 32));
}

/**
 * The werift internals the send path reaches into (werift is pinned in package.json
 * for them; werift-engine.test.ts pins their shape on a connected peer).
 */
interface WeriftDtls {
  state: string;
  srtp?: { localContext: { profile: number; srtpSessionKey: Buffer; srtpSessionSalt: Buffer; srtpSessionAuthTag: Buffer } };
  iceTransport: { connection: { canSendApplicationData(): boolean; nominated?: IcePair; send(data: Buffer): Promise<void> } };
}
interface IcePair {
  remoteAddr: [string, number];
  protocol: { transport?: { socket?: Socket } };
}

/**
 * One viewer's RTP sender for one track, in place of werift's per-packet path
 * (which cloned each packet, rebuilt its header extensions and sent through three
 * promises: about 1.3% of a core per 2 Mbit/s viewer). Per packet: a 12-byte header,
 * SRTP protection (server/core/media/rtp/srtp-protector.ts), one scatter-gather datagram
 * on the ICE pair's socket. It keeps the viewer's sequence numbers contiguous when
 * the shared packets skip ahead (a viewer held back until a keyframe), answers NACK
 * from its own history, and gives werift's sender-report loop the media clock
 * (the packets' wallMs) instead of the send time.
 */
class ViewerRtpSender {
  private seqOffset: number | undefined;
  private lastIn = 0;
  private lastOut = 0;
  private rolloverCounter = 0;
  private packets = 0;
  private octets = 0;
  private lastTimestamp = 0;
  private lastWallMs = 0;
  private readonly history: (RtpOut | undefined)[] = new Array<RtpOut | undefined>(HISTORY);
  private readonly historySeq = new Int32Array(HISTORY).fill(-1);
  private readonly historyRoc = new Uint32Array(HISTORY);
  private protector: SrtpProtector | undefined;
  private protectorOf: unknown;
  private reporting = false;

  constructor(private readonly sender: RTCRtpSender) {
    // werift's RTCP loop reads these for each sender report: the media clock, not the send time.
    Object.defineProperties(sender, {
      ntpTimestamp: { configurable: true, get: () => ntpFromMs(this.lastWallMs), set: () => {} },
      rtpTimestamp: { configurable: true, get: () => this.lastTimestamp, set: () => {} },
      packetCount: { configurable: true, get: () => this.packets >>> 0, set: () => {} },
      octetCount: { configurable: true, get: () => this.octets >>> 0, set: () => {} },
    });
    sender.onRtcp.subscribe((rtcp) => {
      if (rtcp.type !== RtcpTransportLayerFeedback.type) return;
      const feedback = rtcp.feedback;
      if (feedback.count !== GenericNack.count || (feedback as GenericNack).mediaSourceSsrc !== sender.ssrc) return;
      for (const seq of (feedback as GenericNack).lost) {
        const slot = seq % HISTORY;
        const packet = this.history[slot];
        if (packet && this.historySeq[slot] === seq) this.transmit(packet, seq, this.historyRoc[slot]!);
      }
    });
  }

  send(p: RtpOut): void {
    if (this.sender.stopped || weriftDtls(this.sender)?.state !== 'connected' || !this.sender.codec) return;
    if (this.seqOffset === undefined) this.seqOffset = Math.floor(Math.random() * 0x8000) - p.sequenceNumber;
    else if (p.sequenceNumber !== ((this.lastIn + 1) & 0xffff)) this.seqOffset = this.lastOut + 1 - p.sequenceNumber;
    this.lastIn = p.sequenceNumber;
    const seq = (p.sequenceNumber + this.seqOffset) & 0xffff;
    if (seq === 0 && this.packets > 0) this.rolloverCounter = (this.rolloverCounter + 1) >>> 0;
    this.lastOut = seq;
    const slot = seq % HISTORY;
    this.history[slot] = p;
    this.historySeq[slot] = seq;
    this.historyRoc[slot] = this.rolloverCounter;
    this.packets++;
    this.octets += p.payload.length;
    this.lastTimestamp = p.timestamp;
    this.lastWallMs = p.wallMs;
    this.transmit(p, seq, this.rolloverCounter);
    if (!this.reporting) {
      this.reporting = true;
      void this.sender.runRtcp();
    }
  }

  private transmit(p: RtpOut, seq: number, rolloverCounter: number): void {
    const dtls = weriftDtls(this.sender)!;
    const connection = dtls.iceTransport.connection;
    if (!dtls.srtp || !connection.canSendApplicationData()) return;
    if (this.protectorOf !== dtls.srtp) this.protector = protectorFor(dtls.srtp);
    this.protectorOf = dtls.srtp;
    const header = writeRtpHeader(Buffer.allocUnsafe(RTP_HEADER_BYTES), this.sender.codec!.payloadType, p.marker, seq, p.timestamp, this.sender.ssrc);
    const parts = this.protector!.protect(header, p.payload, rolloverCounter);
    const pair = connection.nominated!;
    const socket = pair.protocol.transport?.socket;
    try {
      // Not connect()ed: that would save dgram's address lookup per packet, but a socket
      // in the middle of connecting loses what is sent meanwhile (the first keyframe: measured).
      if (socket) socket.send(parts, pair.remoteAddr[1], pair.remoteAddr[0]);
      else void connection.send(Buffer.concat(parts)).catch(() => {});
    } catch {
      // The socket closed under us: the session is ending.
    }
  }
}

/** A sender's DTLS transport as the send path reads it (the contract test checks it on a connected peer). */
export function weriftDtls(sender: RTCRtpSender): WeriftDtls | undefined {
  return sender.dtlsTransport as unknown as WeriftDtls | undefined;
}

/** Our protector with the session keys werift derived from DTLS. */
function protectorFor(srtp: NonNullable<WeriftDtls['srtp']>): SrtpProtector {
  const ctx = srtp.localContext;
  if (ctx.profile === ProtectionProfileAeadAes128Gcm)
    return new SrtpProtector({ profile: 'aead-aes-128-gcm', key: ctx.srtpSessionKey, salt: ctx.srtpSessionSalt.subarray(0, 12) });
  if (ctx.profile === ProtectionProfileAes128CmHmacSha1_80)
    return new SrtpProtector({
      profile: 'aes128-cm-hmac-sha1-80',
      key: ctx.srtpSessionKey,
      salt: ctx.srtpSessionSalt.subarray(0, 14),
      authKey: ctx.srtpSessionAuthTag,
    });
  throw new RelayError('WEBRTC_UNAVAILABLE', `SRTP profile ${ctx.profile} is not supported`);
}

const sendThrough = (sender: ViewerRtpSender) => (p: RtpOut) => sender.send(p);
