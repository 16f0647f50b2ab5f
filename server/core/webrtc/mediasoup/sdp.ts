// WHEP's and WHIP's offers and answers (RFC 9725) mapped to and from mediasoup's parameters. Pure:
// text in, parameters out, and the other way; the engine holds the transports. sdp-transform reads and writes
// the SDP grammar; what goes in each line is decided here.
import sdpTransform from 'sdp-transform';
import type { types } from 'mediasoup';
import { RelayError } from '../../errors.ts';

type MediaKind = 'audio' | 'video';

/** One m-section of the offer, in its order. */
export interface OfferSection {
  mid: string;
  kind: string;
  /** The section's protocol, echoed in the answer (`UDP/TLS/RTP/SAVPF`). */
  protocol: string;
  /** The viewer can receive (recvonly or sendrecv). */
  receives: boolean;
}

export interface WhepOffer {
  sections: OfferSection[];
  /** What the viewer can receive, with its own payload types and header extension ids (consumers speak them). */
  rtpCapabilities: types.RtpCapabilities;
  /** The viewer's DTLS fingerprints; it is the DTLS client (it offers actpass, the answer says passive). */
  dtls: types.DtlsParameters;
}

/** The codecs sent: H.264 (packetization mode 1) and Opus. */
const WANTED = /^(video\/h264|audio\/opus|video\/rtx)$/i;

/** The offer's grammar read, with at least one media section; else SDP_INVALID. */
function parseOffer(sdp: string): sdpTransform.SessionDescription {
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(sdp);
  } catch (err) {
    throw new RelayError('SDP_INVALID', (err as Error).message);
  }
  if (!Array.isArray(session.media) || session.media.length === 0) throw new RelayError('SDP_INVALID', 'the offer has no media section');
  return session;
}

/** A section's mid, or its index where it has none. */
const midOf = (m: sdpTransform.MediaDescription, index: number): string => (m.mid === undefined ? String(index) : String(m.mid));

/** sdp-transform reads digits as a number: profile-level-id 640032 is hex text. */
function hexProfile(params: sdpTransform.ParamMap): sdpTransform.ParamMap {
  const pli = params['profile-level-id'];
  if (typeof pli === 'number') params['profile-level-id'] = String(pli).padStart(6, '0');
  return params;
}

/**
 * The offerer's DTLS parameters (it is the DTLS client: it offers actpass, the answer says passive), from
 * the session's fingerprint or the first section's. SDP_INVALID without ICE credentials or a fingerprint.
 */
function clientDtls(session: sdpTransform.SessionDescription): types.DtlsParameters {
  if (!session.iceUfrag && !session.media.some((m) => m.iceUfrag)) throw new RelayError('SDP_INVALID', 'the offer has no ICE credentials');
  const fingerprint = session.fingerprint ?? session.media.find((m) => m.fingerprint)?.fingerprint;
  if (!fingerprint) throw new RelayError('SDP_INVALID', 'the offer has no DTLS fingerprint');
  return { role: 'client', fingerprints: [{ algorithm: fingerprint.type as types.FingerprintAlgorithm, value: fingerprint.hash }] };
}

/**
 * Reads a WHEP offer. Refusals: SDP_INVALID for text that is not an SDP offer with
 * ICE credentials and a DTLS fingerprint, CODEC_UNSUPPORTED when no section can
 * receive H.264 or Opus.
 */
export function parseWhepOffer(sdp: string): WhepOffer {
  const session = parseOffer(sdp);
  const codecs: types.RtpCodecCapability[] = [];
  const headerExtensions: types.RtpHeaderExtension[] = [];
  const sections: OfferSection[] = [];
  for (const [index, m] of session.media.entries()) {
    const mid = midOf(m, index);
    const receives = m.port !== 0 && (m.direction === undefined || m.direction === 'recvonly' || m.direction === 'sendrecv');
    sections.push({ mid, kind: m.type, protocol: m.protocol, receives });
    if (!receives || (m.type !== 'audio' && m.type !== 'video')) continue;
    const kind: MediaKind = m.type;
    // One section per kind is enough: a second video section would carry the same stream.
    if (codecs.some((c) => c.kind === kind)) continue;
    const fmtp = new Map((m.fmtp ?? []).map((f) => [f.payload, hexProfile(sdpTransform.parseParams(f.config))]));
    for (const rtp of m.rtp ?? []) {
      const mimeType = `${kind}/${rtp.codec}`;
      if (!WANTED.test(mimeType)) continue;
      const parameters = fmtp.get(rtp.payload) ?? {};
      codecs.push({
        kind,
        mimeType,
        preferredPayloadType: rtp.payload,
        clockRate: rtp.rate ?? (kind === 'audio' ? 48_000 : 90_000),
        channels: kind === 'audio' ? Number(rtp.encoding ?? 1) : undefined,
        parameters,
        rtcpFeedback: (m.rtcpFb ?? [])
          .filter((fb) => String(fb.payload) === String(rtp.payload) || fb.payload === '*')
          .map((fb) => ({ type: fb.type, parameter: fb.subtype ?? '' })),
      });
    }
    for (const ext of m.ext ?? []) headerExtensions.push({ kind, uri: ext.uri as types.RtpHeaderExtensionUri, preferredId: ext.value, direction: 'sendrecv' });
  }
  const dtls = clientDtls(session);
  if (!codecs.some((c) => /h264|opus/i.test(c.mimeType))) throw new RelayError('CODEC_UNSUPPORTED', 'the offer can receive neither H.264 video nor Opus audio');
  return {
    sections,
    rtpCapabilities: { codecs, headerExtensions },
    dtls,
  };
}

/** What the answer says of the relay's side. */
export interface AnswerTransport {
  iceParameters: types.IceParameters;
  iceCandidates: types.IceCandidate[];
  dtlsParameters: types.DtlsParameters;
}

/** A consumer's parameters, for the section of the offer it answers. */
export interface AnswerTrack {
  mid: string;
  kind: MediaKind;
  rtpParameters: types.RtpParameters;
  /** The stream's id in msid lines (a player groups tracks by it). */
  streamId: string;
  trackId: string;
}

/**
 * The answer: every section of the offer in its order (RFC 8829), each one with its track's codecs and
 * header extensions, or rejected (port 0) when it carries nothing. WHEP: sendonly, with the consumer's
 * SSRCs (and the RTX one). WHIP: recvonly, the publisher's own payload types and extension ids.
 * ICE-lite, every candidate in each section and end-of-candidates (no trickle), DTLS passive.
 */
export function renderAnswer(
  offer: { sections: OfferSection[] },
  transport: AnswerTransport,
  tracks: AnswerTrack[],
  direction: 'sendonly' | 'recvonly' = 'sendonly',
): string {
  const fingerprint = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256') ?? transport.dtlsParameters.fingerprints[0]!;
  const bundled = offer.sections.filter((s) => tracks.some((t) => t.mid === s.mid)).map((s) => s.mid);
  const media: sdpTransform.MediaDescription[] = offer.sections.map((section) => {
    const track = tracks.find((t) => t.mid === section.mid);
    if (!track) {
      return {
        type: section.kind,
        port: 0,
        protocol: section.protocol,
        payloads: '0',
        rtp: [],
        fmtp: [],
        mid: section.mid,
        direction: 'inactive',
      };
    }
    const { rtpParameters } = track;
    const encoding = rtpParameters.encodings?.[0];
    const cname = rtpParameters.rtcp?.cname ?? track.streamId;
    const ssrcs: sdpTransform.MediaDescription['ssrcs'] = [];
    const msid = `${track.streamId} ${track.trackId}`;
    if (encoding?.ssrc !== undefined)
      ssrcs.push({ id: encoding.ssrc, attribute: 'cname', value: cname }, { id: encoding.ssrc, attribute: 'msid', value: msid });
    if (encoding?.rtx) ssrcs.push({ id: encoding.rtx.ssrc, attribute: 'cname', value: cname }, { id: encoding.rtx.ssrc, attribute: 'msid', value: msid });
    return {
      type: track.kind,
      port: 7,
      protocol: section.protocol,
      payloads: rtpParameters.codecs.map((c) => c.payloadType).join(' '),
      connection: { version: 4, ip: '127.0.0.1' },
      mid: section.mid,
      direction,
      ...(direction === 'sendonly' ? { msid: [{ id: track.streamId, appdata: track.trackId }] } : {}),
      iceUfrag: transport.iceParameters.usernameFragment,
      icePwd: transport.iceParameters.password,
      fingerprint: { type: fingerprint.algorithm, hash: fingerprint.value },
      setup: 'passive',
      candidates: transport.iceCandidates.map((c) => ({
        foundation: c.foundation,
        component: 1,
        transport: c.protocol,
        priority: c.priority,
        ip: c.address,
        port: c.port,
        type: c.type,
        ...(c.tcpType ? { tcptype: c.tcpType } : {}),
      })),
      endOfCandidates: 'end-of-candidates',
      rtcpMux: 'rtcp-mux',
      rtcpRsize: 'rtcp-rsize',
      rtp: rtpParameters.codecs.map((c) => ({
        payload: c.payloadType,
        codec: c.mimeType.split('/')[1]!,
        rate: c.clockRate,
        ...(c.channels && c.channels > 1 ? { encoding: c.channels } : {}),
      })),
      fmtp: rtpParameters.codecs
        .filter((c) => c.parameters && Object.keys(c.parameters).length > 0)
        .map((c) => ({
          payload: c.payloadType,
          config: Object.entries(c.parameters!)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(';'),
        })),
      rtcpFb: rtpParameters.codecs.flatMap((c) =>
        (c.rtcpFeedback ?? []).map((fb) => ({ payload: c.payloadType, type: fb.type, ...(fb.parameter ? { subtype: fb.parameter } : {}) })),
      ),
      ext: (rtpParameters.headerExtensions ?? []).map((e) => ({ value: e.id, uri: e.uri })),
      ssrcs,
      ssrcGroups: encoding?.ssrc !== undefined && encoding.rtx ? [{ semantics: 'FID', ssrcs: `${encoding.ssrc} ${encoding.rtx.ssrc}` }] : undefined,
    };
  });
  const session: sdpTransform.SessionDescription = {
    version: 0,
    origin: { username: '-', sessionId: Date.now(), sessionVersion: 2, netType: 'IN', ipVer: 4, address: '127.0.0.1' },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    groups: bundled.length > 0 ? [{ type: 'BUNDLE', mids: bundled.join(' ') }] : undefined,
    msidSemantic: { semantic: 'WMS', token: '*' },
    media,
  };
  return sdpTransform.write(session);
}

/** H.264 profiles (profile_idc) a router takes: Baseline and Constrained Baseline, Main, Extended, High. */
const ROUTER_H264_PROFILES = new Set(['42', '4d', '58', '64']);

/**
 * The codecs of a router that speaks this viewer's payload types. mediasoup sends with its router's
 * payload types, and a browser drops media whose payload type is not the one it offered for that
 * codec: so viewers are served by routers keyed by their payload types and header extension ids
 * (one for each browser family in practice), fed from the rendition's producers by piping. RTX is left out (mediasoup numbers it
 * itself): lost packets are resent on the media SSRC.
 */
export function routerCodecsFor(offer: WhepOffer): { key: string; mediaCodecs: types.RouterRtpCodecCapability[] } {
  const mediaCodecs: types.RouterRtpCodecCapability[] = [];
  for (const c of offer.rtpCapabilities.codecs ?? []) {
    const mime = c.mimeType.toLowerCase();
    const params = c.parameters ?? {};
    if (mime === 'audio/opus' && !mediaCodecs.some((m) => m.kind === 'audio')) {
      mediaCodecs.push({ kind: 'audio', mimeType: 'audio/opus', clockRate: 48_000, channels: 2, preferredPayloadType: c.preferredPayloadType });
    } else if (mime === 'video/h264' && String(params['packetization-mode']) === '1') {
      const profile = (typeof params['profile-level-id'] === 'string' ? params['profile-level-id'] : '42e01f').toLowerCase();
      if (!/^[0-9a-f]{6}$/.test(profile) || !ROUTER_H264_PROFILES.has(profile.slice(0, 2))) continue;
      mediaCodecs.push({
        kind: 'video',
        mimeType: 'video/H264',
        clockRate: 90_000,
        preferredPayloadType: c.preferredPayloadType,
        parameters: { 'packetization-mode': 1, 'profile-level-id': profile, 'level-asymmetry-allowed': 1 },
        rtcpFeedback: c.rtcpFeedback,
      });
    }
  }
  const extensions = (offer.rtpCapabilities.headerExtensions ?? []).map((e) => `${e.kind}:${e.preferredId}:${e.uri}`);
  const key = [
    ...mediaCodecs.map((c) => `${c.preferredPayloadType}:${c.mimeType}:${(c.parameters?.['profile-level-id'] as string | undefined) ?? ''}`),
    ...extensions,
  ].join(',');
  return { key, mediaCodecs };
}

/** The extensions a worker consumer renumbers (those its C++ Consumer reads from its parameters). */
const RENUMBERED = new Set<string>([
  'urn:ietf:params:rtp-hdrext:sdes:mid',
  'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'urn:3gpp:video-orientation',
  'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay',
]);

/**
 * A viewers' router's header extensions renumbered with the viewer's ids. mediasoup numbers them
 * from its own table, and a browser refuses an answer that renumbers an extension it offered
 * ("RTP extension ID reassignment not supported"), so the router that serves these viewers takes
 * their numbering (the relay's worker patch writes each consumer's ids); extensions they did not offer,
 * and those the worker's consumers do not renumber, are dropped.
 */
export function extensionsWithOfferIds(offer: WhepOffer, router: types.RtpCapabilities): types.RtpHeaderExtension[] {
  return (router.headerExtensions ?? []).flatMap((ext) => {
    if (!RENUMBERED.has(ext.uri)) return [];
    const theirs = offer.rtpCapabilities.headerExtensions?.find((o) => o.kind === ext.kind && o.uri === ext.uri);
    return theirs ? [{ ...ext, preferredId: theirs.preferredId }] : [];
  });
}

/**
 * A viewers' router's codecs with RTX numbered as the viewer offered it (mediasoup numbers RTX itself;
 * a browser drops what comes with a payload type it did not offer). An RTX the viewer did not offer
 * is dropped: then lost packets are not resent.
 */
export function codecsWithOfferRtx(offer: WhepOffer, router: types.RtpCapabilities): types.RtpCodecCapability[] {
  const offered = (offer.rtpCapabilities.codecs ?? []).filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
  return (router.codecs ?? []).flatMap((codec) => {
    if (codec.mimeType.toLowerCase() !== 'video/rtx') return [codec];
    const apt = String(codec.parameters?.apt);
    const theirs = offered.find((o) => String(o.parameters?.apt) === apt);
    return theirs ? [{ ...codec, preferredPayloadType: theirs.preferredPayloadType }] : [];
  });
}

/** A publisher's track, as its producer takes it. */
export interface WhipTrack {
  mid: string;
  kind: MediaKind;
  /** The publisher's payload types, header extension ids and SSRCs: the producer's parameters, and the answer's. */
  rtpParameters: types.RtpParameters;
}

export interface WhipOffer {
  sections: OfferSection[];
  /** At most one video (H.264, packetization mode 1) and one audio (Opus) track: the first the offer sends. */
  tracks: WhipTrack[];
  /** The publisher's DTLS fingerprints; it is the DTLS client (the answer says passive). */
  dtls: types.DtlsParameters;
}

/** The header extensions a producer reads (the others are not answered, so the publisher does not send them). */
const PRODUCER_EXTENSIONS = new Set<string>([
  'urn:ietf:params:rtp-hdrext:sdes:mid',
  'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'urn:3gpp:video-orientation',
]);

/**
 * Reads a WHIP offer: the publisher's sending sections, each one's codec (its first H.264 in packetization
 * mode 1 of a profile the router takes, with its RTX; or Opus), header extensions and SSRCs. Refusals:
 * SDP_INVALID for text that is not an SDP offer with ICE credentials and a DTLS fingerprint,
 * CODEC_UNSUPPORTED when it sends neither H.264 nor Opus, and for simulcast (one picture per stream here).
 */
export function parseWhipOffer(sdp: string): WhipOffer {
  const session = parseOffer(sdp);
  const sections: OfferSection[] = [];
  const tracks: WhipTrack[] = [];
  for (const [index, m] of session.media.entries()) {
    const mid = midOf(m, index);
    const sends = m.port !== 0 && (m.direction === undefined || m.direction === 'sendonly' || m.direction === 'sendrecv');
    sections.push({ mid, kind: m.type, protocol: m.protocol, receives: false });
    if (!sends || (m.type !== 'audio' && m.type !== 'video') || tracks.some((t) => t.kind === m.type)) continue;
    const kind: MediaKind = m.type;
    if (m.simulcast || m.rids?.length)
      throw new RelayError('CODEC_UNSUPPORTED', 'simulcast publishing is not taken: send one encoding (the origin makes the ladder)');
    const fmtp = new Map((m.fmtp ?? []).map((f) => [f.payload, hexProfile(sdpTransform.parseParams(f.config))]));
    const feedback = (pt: number) =>
      (m.rtcpFb ?? []).filter((fb) => String(fb.payload) === String(pt) || fb.payload === '*').map((fb) => ({ type: fb.type, parameter: fb.subtype ?? '' }));
    const chosen = (m.rtp ?? []).find((rtp) => {
      const params = fmtp.get(rtp.payload) ?? {};
      if (kind === 'audio') return /^opus$/i.test(rtp.codec);
      const profile = String(params['profile-level-id'] ?? '42e01f');
      return /^h264$/i.test(rtp.codec) && String(params['packetization-mode']) === '1' && ROUTER_H264_PROFILES.has(profile.slice(0, 2).toLowerCase());
    });
    if (!chosen) continue;
    const parameters = { ...(fmtp.get(chosen.payload) ?? {}) };
    const codecs: types.RtpCodecParameters[] = [
      {
        mimeType: `${kind}/${chosen.codec}`,
        payloadType: chosen.payload,
        clockRate: chosen.rate ?? (kind === 'audio' ? 48_000 : 90_000),
        ...(kind === 'audio' ? { channels: Number(chosen.encoding ?? 2) } : {}),
        parameters,
        rtcpFeedback: feedback(chosen.payload),
      },
    ];
    const rtx = (m.rtp ?? []).find((rtp) => /^rtx$/i.test(rtp.codec) && String(fmtp.get(rtp.payload)?.apt) === String(chosen.payload));
    if (rtx)
      codecs.push({ mimeType: `${kind}/rtx`, payloadType: rtx.payload, clockRate: rtx.rate ?? 90_000, parameters: { apt: chosen.payload }, rtcpFeedback: [] });
    // The media SSRC and its RTX one (a=ssrc-group:FID), when the offer names them; else mediasoup finds the stream by its MID.
    const fid = m.ssrcGroups
      ?.find((g) => g.semantics === 'FID')
      ?.ssrcs.split(' ')
      .map(Number);
    const ssrc = fid?.[0] ?? m.ssrcs?.[0]?.id;
    const cname = m.ssrcs?.find((a) => a.attribute === 'cname')?.value;
    tracks.push({
      mid,
      kind,
      rtpParameters: {
        mid,
        codecs,
        headerExtensions: (m.ext ?? []).filter((e) => PRODUCER_EXTENSIONS.has(e.uri)).map((e) => ({ uri: e.uri as types.RtpHeaderExtensionUri, id: e.value })),
        encodings: [ssrc === undefined ? {} : { ssrc: Number(ssrc), ...(rtx && fid?.[1] !== undefined ? { rtx: { ssrc: fid[1] } } : {}) }],
        rtcp: { ...(cname ? { cname: String(cname) } : {}), reducedSize: m.rtcpRsize === 'rtcp-rsize' },
      },
    });
  }
  const dtls = clientDtls(session);
  if (tracks.length === 0) throw new RelayError('CODEC_UNSUPPORTED', 'the offer sends neither H.264 video (packetization mode 1) nor Opus audio');
  return {
    sections,
    tracks,
    dtls,
  };
}
