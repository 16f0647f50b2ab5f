import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RelayError } from '../errors.ts';

/** WHIP and WHEP bodies: SDP as a string, up to `limit` bytes (registered once per server). */
function acceptSdpBodies(app: FastifyInstance, limit: number): void {
  if (app.hasContentTypeParser('application/sdp')) return;
  app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: limit }, (_req, body, done) =>
    done(null, body),
  );
}

/** CORS for WHIP and WHEP: a browser page on another origin may publish or play. */
function allowCrossOrigin(reply: FastifyReply): FastifyReply {
  return reply
    .header('access-control-allow-origin', '*')
    .header('access-control-allow-methods', 'POST, DELETE, PATCH, OPTIONS')
    .header('access-control-allow-headers', 'authorization, content-type')
    .header('access-control-expose-headers', 'location');
}

/**
 * The offer of a WHIP or WHEP POST, checked before any engine sees it: the content
 * type, something that looks like SDP with media, ICE credentials and a DTLS
 * fingerprint. Throws CONTENT_TYPE_INVALID or SDP_INVALID.
 */
export function readOffer(contentType: string | undefined, body: unknown): string {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/sdp') throw new RelayError('CONTENT_TYPE_INVALID', `got ${type || 'none'}`);
  const offer = typeof body === 'string' ? body : '';
  if (!/^v=0\r?\n/.test(offer) || !/\r?\nm=(audio|video) /.test(offer)) throw new RelayError('SDP_INVALID', 'not an SDP offer with media');
  for (const [attribute, what] of [
    ['ice-ufrag', 'ICE credentials'],
    ['ice-pwd', 'ICE credentials'],
    ['fingerprint', 'a DTLS fingerprint'],
  ] as const) {
    if (!new RegExp(`\\na=${attribute}:\\S`).test(offer)) throw new RelayError('SDP_INVALID', `the offer has no ${what} (a=${attribute})`);
  }
  return offer;
}

export type OfferRequest = FastifyRequest<{ Params: { stream: string }; Querystring: { routed?: string; token?: string } }>;

/** The bearer token of a WHIP or WHEP request (RFC 9725). */
export function bearerToken(req: OfferRequest): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
}

/** What a WHIP or WHEP endpoint does; the HTTP around it is the same for both. Refusals are thrown RelayErrors, rendered by the server's one error handler. */
export interface SdpSessions {
  /** Answers an offer (throws a RelayError to refuse), or sends the client elsewhere. */
  create(req: OfferRequest): Promise<{ location: string; answer: string } | { redirect: string }>;
  /** Ends a stream's session; false when it has no such session. */
  end(stream: string, session: string): Promise<boolean>;
}

/**
 * The RFC 9725 routes under `/<path>/:stream`: POST an offer -> `201` with the answer and
 * a `Location` (or a `307`); DELETE the session; PATCH -> `405` (no trickle: the answer
 * carries every candidate); OPTIONS with CORS. Refusals are JSON with a stable code.
 */
export function attachSdpSessions(app: FastifyInstance, path: 'whip' | 'whep', maxBytes: number, sessions: SdpSessions): void {
  acceptSdpBodies(app, maxBytes);
  app.options(`/${path}/:stream`, async (_req, reply) => allowCrossOrigin(reply).header('accept-post', 'application/sdp').status(204).send());
  app.options(`/${path}/:stream/:session`, async (_req, reply) => allowCrossOrigin(reply).status(204).send());
  app.post<{ Params: { stream: string }; Querystring: { routed?: string; token?: string } }>(
    `/${path}/:stream`,
    { bodyLimit: maxBytes },
    async (req, reply) => {
      allowCrossOrigin(reply);
      const made = await sessions.create(req);
      if ('redirect' in made) return reply.redirect(made.redirect, 307);
      return reply.status(201).header('content-type', 'application/sdp').header('location', made.location).send(made.answer);
    },
  );
  app.delete<{ Params: { stream: string; session: string } }>(`/${path}/:stream/:session`, async (req, reply) => {
    allowCrossOrigin(reply);
    if (!(await sessions.end(req.params.stream, req.params.session))) throw new RelayError('SESSION_UNKNOWN');
    return reply.status(200).send();
  });
  app.patch(`/${path}/:stream/:session`, async (_req, reply) => {
    allowCrossOrigin(reply).header('allow', 'DELETE, OPTIONS');
    throw new RelayError('TRICKLE_UNSUPPORTED');
  });
}
