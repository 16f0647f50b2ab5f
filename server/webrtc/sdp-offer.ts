import type { FastifyInstance, FastifyReply } from 'fastify';
import { RelayError } from '../errors.ts';

/** WHIP and WHEP bodies: SDP as a string, up to `limit` bytes (registered once per server). */
export function acceptSdpBodies(app: FastifyInstance, limit: number): void {
  if (app.hasContentTypeParser('application/sdp')) return;
  app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: limit }, (_req, body, done) => done(null, body));
}

/** CORS for WHIP and WHEP: a browser page on another origin may publish or play. */
export function allowCrossOrigin(reply: FastifyReply): FastifyReply {
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
  for (const [attribute, what] of [['ice-ufrag', 'ICE credentials'], ['ice-pwd', 'ICE credentials'], ['fingerprint', 'a DTLS fingerprint']] as const) {
    if (!new RegExp(`\\na=${attribute}:\\S`).test(offer)) throw new RelayError('SDP_INVALID', `the offer has no ${what} (a=${attribute})`);
  }
  return offer;
}

/** A refusal as WHIP and WHEP clients get it: the status, and a JSON body with a stable code. */
export function sendRefusal(reply: FastifyReply, err: RelayError): FastifyReply {
  return reply.status(err.status).header('content-type', 'application/json').send({ code: err.code, message: err.message });
}
