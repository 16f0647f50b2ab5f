import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RelayConfig } from '../../../server/core/config/schema.ts';
import { RelayError } from '../../../server/core/errors.ts';
import type { Logger } from '../../../server/core/log.ts';
import type { RenditionInfo } from '../../../server/core/bus/rendition-catalog.ts';
import { attachSdpSessions, bearerToken, readOffer, type OfferRequest } from '../../../server/core/webrtc/sdp-sessions.ts';
import type { RtcViewerSession } from '../../../server/core/webrtc/webrtc-engine.ts';
import { admitViewer, tokenQuery, type ViewerAccess } from '../../../server/core/auth/viewer-access.ts';
import type { WebRtcStream } from './webrtc-stream.ts';

/** What WHEP needs of the edge it runs on. */
export interface WhepHost {
  access: ViewerAccess;
  /** The stream's renditions, from the bus. */
  renditions(stream: string): Promise<RenditionInfo[]>;
  /** Another edge's base URL when the ring places this stream there. */
  elsewhere(stream: string): string | undefined;
  /** The engine sends a stream's layers as simulcast (else the WebRTC rendition alone). */
  simulcast: boolean;
  /** The stream's WebRTC viewers on this edge, over these layers (renditions, lowest first; made on demand); undefined once the edge drains. */
  webrtcStream(stream: string, layers: string[], primaryLayer: number, topLayerKbps: number | undefined): WebRtcStream | undefined;
  draining(): boolean;
}

/** A viewer whose connection is not up by then is dropped. */
const CONNECT_TIMEOUT_MS = 15_000;

interface WhepSession {
  id: string;
  stream: string;
  rendition: string;
  rtc: RtcViewerSession;
  connectTimer: NodeJS.Timeout | undefined;
  closed: boolean;
}

/**
 * The WHEP endpoint of an edge: `POST /whep/<stream>` with an SDP offer gets `201
 * Created`, the answer and a `Location`; `DELETE` there leaves. The viewer gets
 * the stream's WebRTC rendition (H.264 without B-frames, Opus): a transcoded one
 * for an RTMP source, the source itself for a WHIP one. No trickle: PATCH gets 405.
 * A stream the ring places on another edge is redirected there (307, as RFC 9725
 * allows), unless `?routed=1`. The session belongs to the stream's WebRTC viewers
 * (WebRtcStream, made on demand over the stream's layers), which hand it to the engine.
 */
export class WhepEndpoint {
  private readonly sessions = new Map<string, WhepSession>();

  constructor(
    private readonly config: RelayConfig['webrtc'],
    private readonly host: WhepHost,
    private readonly log: Logger,
  ) {}

  get sessionCount(): number {
    return this.sessions.size;
  }

  attach(app: FastifyInstance): void {
    attachSdpSessions(app, 'whep', this.config.maxSdpBytes, {
      create: async (req) => {
        const { stream } = req.params;
        const token = bearerToken(req) ?? (typeof req.query.token === 'string' && req.query.token ? req.query.token : undefined);
        admitViewer(this.host.access, { stream, token });
        const other = req.query.routed ? undefined : this.host.elsewhere(stream);
        if (other) return { redirect: `${other}/whep/${stream}?routed=1${tokenQuery(token)}` };
        return this.play(req);
      },
      end: async (stream, id) => {
        const session = this.sessions.get(id);
        if (!session || session.stream !== stream) return false;
        await this.end(session, 'the viewer left');
        return true;
      },
    });
  }

  private async play(req: OfferRequest): Promise<{ location: string; answer: string }> {
    const { stream } = req.params;
    const askedAt = performance.now();
    const offer = readOffer(req.headers['content-type'], req.body);
    if (this.host.draining()) throw new RelayError('NO_EDGE_AVAILABLE', 'this edge is shutting down');
    const renditions = await this.host.renditions(stream);
    if (renditions.length === 0) throw new RelayError('STREAM_OFFLINE', stream);
    const rendition = renditions.find((r) => r.webrtc);
    if (!rendition) throw new RelayError('WEBRTC_UNAVAILABLE', `${stream} has ${renditions.map((r) => `${r.name} (${r.codecs})`).join(', ')}`);
    // The layers: every rendition WebRTC can carry the video of, lowest first, when the engine does simulcast.
    let layers = [rendition];
    if (this.host.simulcast && rendition.webrtcVideo)
      layers = renditions.filter((r) => r.webrtcVideo).sort((a, b) => (a.height ?? 0) - (b.height ?? 0) || (a.videoKbps ?? 0) - (b.videoKbps ?? 0));
    const top = layers.at(-1)!;
    const webrtc = this.host.webrtcStream(
      stream,
      layers.map((r) => r.name),
      layers.indexOf(rendition),
      // What the top layer needs, when the ladder or the source's measured rate says (audio from the rendition that carries it).
      top.videoKbps === undefined ? undefined : top.videoKbps + (rendition.audioKbps ?? 0),
    );
    if (!webrtc) throw new RelayError('NO_EDGE_AVAILABLE', 'this edge is shutting down');
    const rtc = await webrtc.join(offer, askedAt);
    const session: WhepSession = { id: randomUUID(), stream, rendition: rendition.name, rtc, connectTimer: undefined, closed: false };
    this.sessions.set(session.id, session);
    rtc.onClosed(() => void this.end(session, 'the peer connection closed'));
    session.connectTimer = setTimeout(() => void this.end(session, 'ICE and DTLS did not connect in time'), CONNECT_TIMEOUT_MS).unref();
    rtc.onConnected(() => clearTimeout(session.connectTimer));
    this.log.info({ stream, rendition: rendition.name, session: session.id, remote: req.ip }, 'WHEP viewer connecting');
    return { location: `/whep/${encodeURIComponent(stream)}/${session.id}`, answer: rtc.answer };
  }

  private async end(session: WhepSession, why: string): Promise<void> {
    if (session.closed) return;
    session.closed = true;
    clearTimeout(session.connectTimer);
    this.sessions.delete(session.id);
    this.log.info({ stream: session.stream, session: session.id, why }, 'WHEP viewer left');
    await session.rtc.close();
  }

  /** Ends every session, connected or not. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, 'the edge is shutting down')));
  }
}
