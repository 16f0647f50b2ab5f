import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RelayConfig } from '../../core/config/schema.ts';
import { asRelayError, RelayError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { isStreamName } from '../../core/media/stream-name.ts';
import type { IngestAdapter, IngestGateway, IngestPublication } from './ingest.ts';
import type { IngestSession, WebRtcEngine } from '../../core/webrtc/webrtc-engine.ts';
import { attachSdpSessions, bearerToken, readOffer, type OfferRequest } from '../../core/webrtc/sdp-sessions.ts';
import { KeyframeThrottle } from '../../core/webrtc/keyframe-throttle.ts';
import { RtpFrameAssembler } from './rtp-frame-assembler.ts';

interface WhipSession {
  id: string;
  stream: string;
  rtc: IngestSession;
  publication: IngestPublication;
  closed: boolean;
  unsubscribe?: () => void;
  keyframes?: KeyframeThrottle;
  /** Asks for a keyframe when the publisher has sent none for maxKeyframeIntervalMs. */
  gopTimer?: ReturnType<typeof setInterval>;
}

/**
 * WHIP ingest (RFC 9725) on an origin: `POST /whip/<stream>` with the stream key
 * as bearer token and an SDP offer; `201 Created` with the answer and the
 * session's `Location`; `DELETE` there ends the stream. No trickle ICE: the answer
 * carries every candidate, and PATCH gets 405. The publisher's frames go where an
 * RTMP publisher's go: same lease, same fencing, same bus subjects.
 */
export class WhipIngest implements IngestAdapter {
  readonly protocol = 'whip';
  /** Its routes are on the node's HTTP listener, whose readiness is checked apart. */
  readonly listening = true;
  private readonly sessions = new Map<string, WhipSession>();

  constructor(
    private readonly config: RelayConfig['webrtc'],
    private readonly engine: WebRtcEngine,
    private readonly gateway: IngestGateway,
    private readonly log: Logger,
    /** Edges' keyframe requests for a stream (a WHEP viewer waiting): subscribe, get the unsubscribe. */
    private readonly keyframeRequests?: (stream: string, handler: () => void) => () => void,
  ) {}

  async start(): Promise<void> {}

  get sessionCount(): number {
    return this.sessions.size;
  }

  attach(app: FastifyInstance): void {
    attachSdpSessions(app, 'whip', this.config.maxSdpBytes, {
      create: (req) =>
        this.publish(req).catch((err: unknown) => {
          this.gateway.refused('whip', asRelayError(err));
          throw err;
        }),
      end: async (stream, id) => {
        const session = this.sessions.get(id);
        if (!session || session.stream !== stream) return false;
        await this.end(session, 'the publisher ended the session');
        return true;
      },
    });
  }

  private async publish(req: OfferRequest): Promise<{ location: string; answer: string }> {
    const { stream } = req.params;
    if (!isStreamName(stream)) throw new RelayError('STREAM_NAME_INVALID');
    const key = bearerToken(req);
    if (!key) throw new RelayError('AUTH_REQUIRED');
    const remote = req.ip;
    const named = this.gateway.authenticate(key, { protocol: 'whip', remote });
    if (named !== stream) {
      this.log.warn({ code: 'STREAM_KEY_INVALID', stream, remote }, 'WHIP publisher refused: the key is for another stream');
      throw new RelayError('STREAM_KEY_INVALID');
    }
    const offer = readOffer(req.headers['content-type'], req.body);
    const rtc = await this.engine.ingest(offer);
    const tracks = {
      video: /\r?\nm=video /.test(rtc.answer) && !/\r?\nm=video 0 /.test(rtc.answer),
      audio: /\r?\nm=audio /.test(rtc.answer) && !/\r?\nm=audio 0 /.test(rtc.answer),
    };
    const id = randomUUID();
    const box: { session?: WhipSession } = {};
    let publication: IngestPublication;
    try {
      publication = await this.gateway.open({
        stream,
        remote,
        protocol: 'whip',
        control: {
          pause: () => {}, // RTP cannot be paused; the bus publisher's window absorbs bursts
          resume: () => {},
          disconnect: (reason) => {
            if (box.session) void this.end(box.session, reason.message, reason);
          },
        },
      });
    } catch (err) {
      await rtc.close();
      throw err;
    }
    const session: WhipSession = (box.session = { id, stream, rtc, publication, closed: false });
    this.sessions.set(id, session);
    this.wire(session, tracks);
    this.log.info({ stream, session: id, remote, video: tracks.video, audio: tracks.audio }, 'WHIP publisher connected');
    return { location: `/whip/${encodeURIComponent(stream)}/${id}`, answer: rtc.answer };
  }

  private wire(session: WhipSession, tracks: { video: boolean; audio: boolean }): void {
    const frames = new RtpFrameAssembler(tracks, { encoder: 'WHIP' });
    const keyframes = (session.keyframes = new KeyframeThrottle(this.config.keyframeRequestMinMs, () => session.rtc.requestKeyframe()));
    const askKeyframe = () => keyframes.request();
    const log = this.log.child({ stream: session.stream, session: session.id });
    const fail = (err: unknown) => {
      log.warn({ code: err instanceof RelayError ? err.code : 'CODEC_UNSUPPORTED', err: (err as Error).message }, 'unreadable WHIP media; ending the session');
      void this.end(session, 'unreadable media', err instanceof RelayError ? err : new RelayError('CODEC_UNSUPPORTED', (err as Error).message));
    };
    // A browser's encoder makes keyframes only when asked: without them a WebSocket or HLS viewer joining
    // late would start a whole (unbounded) GOP behind live, and HLS segments would never end.
    let lastKeyframe = performance.now();
    const { maxKeyframeIntervalMs } = this.config;
    if (tracks.video && maxKeyframeIntervalMs > 0) {
      session.gopTimer = setInterval(() => performance.now() - lastKeyframe >= maxKeyframeIntervalMs && askKeyframe(), Math.min(250, maxKeyframeIntervalMs));
      session.gopTimer.unref();
    }
    session.rtc.onVideo((packet) => {
      if (session.closed) return;
      try {
        for (const frame of frames.video(packet, performance.timeOrigin + performance.now())) {
          if (frame.track === 'video' && frame.keyframe) lastKeyframe = performance.now();
          session.publication.frame(frame);
        }
      } catch (err) {
        return fail(err);
      }
      if (frames.needKeyframe) askKeyframe();
    });
    session.rtc.onAudio((packet) => {
      if (session.closed) return;
      const frame = frames.audio(packet, performance.timeOrigin + performance.now());
      if (frame) session.publication.frame(frame);
    });
    session.rtc.onClosed(() => void this.end(session, 'the peer connection closed'));
    session.unsubscribe = this.keyframeRequests?.(session.stream, askKeyframe);
  }

  private async end(session: WhipSession, why: string, reason?: RelayError): Promise<void> {
    if (session.closed) return;
    session.closed = true;
    session.unsubscribe?.();
    session.keyframes?.close();
    clearInterval(session.gopTimer);
    this.sessions.delete(session.id);
    this.log.info({ stream: session.stream, session: session.id, why, code: reason?.code }, 'WHIP session ended');
    session.publication.close(reason);
    await session.rtc.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, 'the origin is shutting down')));
  }
}
