import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import sdpTransform from 'sdp-transform';
import type { types } from 'mediasoup';
import { RelayError } from '../../errors.ts';
import { keyframeRequests } from './mediasoup-engine.ts';
import { codecsWithOfferRtx, extensionsWithOfferIds, parseWhepOffer, parseWhipOffer, renderAnswer, routerCodecsFor } from './sdp.ts';

// Offers made by the browsers of these machines: recvonly video then audio, as the player makes them.
const chromium = readFileSync(new URL('../../../../test/fixtures/whep-offer-chromium.sdp', import.meta.url), 'utf8');
// Debian's Firefox ESR has no H.264 for WebRTC (no OpenH264 plugin): VP8, VP9 and AV1 video, Opus audio.
const firefox = readFileSync(new URL('../../../../test/fixtures/whep-offer-firefox.sdp', import.meta.url), 'utf8');

// A WHIP publisher's offer from Chromium's fake camera and microphone (sendonly audio then video, H.264 preferred).
const chromiumWhip = readFileSync(new URL('../../../../test/fixtures/whip-offer-chromium.sdp', import.meta.url), 'utf8');

const refusedWith = (code: string) => (err: unknown) => err instanceof RelayError && err.code === code;
const h264 = (caps: types.RtpCapabilities) => (caps.codecs ?? []).filter((c) => c.mimeType.toLowerCase() === 'video/h264');

/** mediasoup's own numbering (its supportedRtpCapabilities): what a router's capabilities say before they are renumbered. */
const routerCaps: types.RtpCapabilities = {
  codecs: [
    { kind: 'audio', mimeType: 'audio/opus', preferredPayloadType: 111, clockRate: 48_000, channels: 2 },
    {
      kind: 'video',
      mimeType: 'video/H264',
      preferredPayloadType: 117,
      clockRate: 90_000,
      parameters: { 'packetization-mode': 1, 'profile-level-id': '4d001f' },
    },
    { kind: 'video', mimeType: 'video/rtx', preferredPayloadType: 100, clockRate: 90_000, parameters: { apt: 117 } },
    { kind: 'video', mimeType: 'video/rtx', preferredPayloadType: 101, clockRate: 90_000, parameters: { apt: 55 } },
  ],
  headerExtensions: [
    { kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
    { kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
    { kind: 'video', uri: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time', preferredId: 4 },
    { kind: 'video', uri: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01', preferredId: 5 },
    { kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:toffset', preferredId: 12 },
    { kind: 'video', uri: 'https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension', preferredId: 8 },
  ],
};

describe('WHEP offers read into mediasoup parameters', () => {
  test("Chromium's offer: its sections in order, H.264 and Opus with its own payload types, and its DTLS fingerprint as the client's", () => {
    const offer = parseWhepOffer(chromium);
    assert.deepEqual(
      offer.sections.map((s) => [s.mid, s.kind, s.receives]),
      [
        ['0', 'video', true],
        ['1', 'audio', true],
      ],
    );
    const ours = h264(offer.rtpCapabilities).find((c) => c.parameters?.['profile-level-id'] === '42e01f' && c.parameters['packetization-mode'] === 1);
    assert.ok(ours, 'constrained baseline, packetization mode 1');
    assert.equal(ours.preferredPayloadType, 109);
    assert.ok(ours.rtcpFeedback?.some((fb) => fb.type === 'transport-cc'));
    assert.ok(ours.rtcpFeedback?.some((fb) => fb.type === 'nack' && fb.parameter === 'pli'));
    const opus = offer.rtpCapabilities.codecs?.find((c) => c.mimeType === 'audio/opus');
    assert.equal(opus?.preferredPayloadType, 111);
    assert.equal(opus?.channels, 2);
    assert.ok(!offer.rtpCapabilities.codecs?.some((c) => /vp8|vp9|av1/i.test(c.mimeType)), 'only what the relay sends');
    assert.equal(offer.rtpCapabilities.headerExtensions?.find((e) => e.kind === 'video' && e.uri.endsWith('sdes:mid'))?.preferredId, 9);
    assert.equal(offer.dtls.role, 'client');
    assert.equal(offer.dtls.fingerprints[0]?.algorithm, 'sha-256');
    assert.match(offer.dtls.fingerprints[0].value, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  test('a profile-level-id made of digits stays hex text (sdp-transform reads it as a number)', () => {
    const offer = parseWhepOffer(chromium.replace('profile-level-id=42e01f', 'profile-level-id=640032'));
    assert.ok(h264(offer.rtpCapabilities).some((c) => c.parameters?.['profile-level-id'] === '640032'));
  });

  test("Firefox's offer (no H.264 here): Opus alone, with its own payload type and extension ids", () => {
    const offer = parseWhepOffer(firefox);
    assert.equal(h264(offer.rtpCapabilities).length, 0);
    assert.equal(offer.rtpCapabilities.codecs?.find((c) => c.mimeType === 'audio/opus')?.preferredPayloadType, 109);
    const { mediaCodecs } = routerCodecsFor(offer);
    assert.deepEqual(
      mediaCodecs.map((c) => [c.mimeType, c.preferredPayloadType]),
      [['audio/opus', 109]],
    );
  });

  test('refusals: not SDP, no fingerprint, no ICE credentials (SDP_INVALID); nothing it can receive (CODEC_UNSUPPORTED)', () => {
    assert.throws(() => parseWhepOffer('hello'), refusedWith('SDP_INVALID'));
    assert.throws(() => parseWhepOffer(chromium.replace(/^a=fingerprint:.*\r?\n/gm, '')), refusedWith('SDP_INVALID'));
    assert.throws(() => parseWhepOffer(chromium.replace(/^a=ice-(ufrag|pwd):.*\r?\n/gm, '')), refusedWith('SDP_INVALID'));
    const vp8Only = chromium.replace(/^a=rtpmap:\d+ (H264|opus)\/.*\r?\n/gm, '');
    assert.throws(() => parseWhepOffer(vp8Only), refusedWith('CODEC_UNSUPPORTED'));
  });

  test('a section the viewer only sends in, or rejected, is not one to answer with media', () => {
    const offer = parseWhepOffer(chromium.replace('a=recvonly', 'a=sendonly'));
    assert.deepEqual(
      offer.sections.map((s) => s.receives),
      [false, true],
    );
  });
});

describe("a viewers' router speaks the viewer's numbers", () => {
  test("its codecs carry the viewer's payload types: Opus, and H.264 in packetization mode 1 of the profiles a router takes", () => {
    const { key, mediaCodecs } = routerCodecsFor(parseWhepOffer(chromium));
    assert.deepEqual(
      mediaCodecs.map((c) => [c.mimeType, c.preferredPayloadType, c.parameters?.['profile-level-id']]),
      [
        ['video/H264', 103, '42001f'],
        ['video/H264', 109, '42e01f'],
        ['video/H264', 117, '4d001f'],
        ['audio/opus', 111, undefined],
      ],
    );
    assert.equal(routerCodecsFor(parseWhepOffer(chromium)).key, key, 'the same offer, the same router');
    assert.notEqual(routerCodecsFor(parseWhepOffer(firefox)).key, key);
  });

  test("header extensions take the viewer's ids; those it did not offer, and those the worker does not renumber (toffset), go", () => {
    const renumbered = extensionsWithOfferIds(parseWhepOffer(chromium), routerCaps);
    assert.deepEqual(
      renumbered.map((e) => [e.kind, e.uri.split(/[/:#]/).at(-1), e.preferredId]),
      [
        ['video', 'mid', 9],
        ['audio', 'mid', 9],
        ['video', 'abs-send-time', 2],
        ['video', 'draft-holmer-rmcat-transport-wide-cc-extensions-01', 4],
      ],
    );
  });

  test('RTX takes the payload type the viewer pairs with the same codec, and an RTX it did not offer goes', () => {
    const codecs = codecsWithOfferRtx(parseWhepOffer(chromium), routerCaps);
    assert.deepEqual(
      codecs.map((c) => [c.mimeType, c.preferredPayloadType]),
      [
        ['audio/opus', 111],
        ['video/H264', 117],
        ['video/rtx', 118],
      ],
    );
  });
});

/** The relay's side of an answer: a WebRtcTransport's ICE and DTLS parameters. */
const transport = {
  iceParameters: { usernameFragment: 'ufragufragufrag1', password: 'passwordpasswordpassword', iceLite: true },
  iceCandidates: [
    { foundation: 'udpcandidate', priority: 1076558079, ip: '192.0.2.2', address: '192.0.2.2', protocol: 'udp' as const, port: 40000, type: 'host' as const },
    {
      foundation: 'tcpcandidate',
      priority: 1076276479,
      ip: '192.0.2.2',
      address: '192.0.2.2',
      protocol: 'tcp' as const,
      port: 40000,
      type: 'host' as const,
      tcpType: 'passive' as const,
    },
  ],
  dtlsParameters: { role: 'auto' as const, fingerprints: [{ algorithm: 'sha-256' as const, value: 'AB:CD' }] },
};
describe('the WHEP answer', () => {
  const video: types.RtpParameters = {
    mid: '0',
    codecs: [
      {
        mimeType: 'video/H264',
        payloadType: 117,
        clockRate: 90_000,
        parameters: { 'packetization-mode': 1, 'profile-level-id': '4d001f' },
        rtcpFeedback: [{ type: 'nack' }, { type: 'transport-cc' }],
      },
      { mimeType: 'video/rtx', payloadType: 118, clockRate: 90_000, parameters: { apt: 117 }, rtcpFeedback: [] },
    ],
    headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 9 }],
    encodings: [{ ssrc: 1111, rtx: { ssrc: 2222 } }],
    rtcp: { cname: 'relaycname' },
  };

  test('answers every section of the offer in its order: media sendonly with its consumer, ICE-lite, every candidate then end-of-candidates, DTLS passive', () => {
    const offer = parseWhepOffer(chromium);
    const answer = sdpTransform.parse(renderAnswer(offer, transport, [{ mid: '0', kind: 'video', rtpParameters: video, streamId: 's', trackId: 't' }]));
    assert.equal(answer.icelite, 'ice-lite');
    // (sdp-transform reads digits as numbers)
    assert.deepEqual(
      answer.groups?.map((g) => [g.type, String(g.mids)]),
      [['BUNDLE', '0']],
    );
    assert.equal(answer.media.length, 2);
    const [v, a] = answer.media;
    assert.equal(String(v!.mid), '0');
    assert.equal(v!.direction, 'sendonly');
    assert.equal(v!.setup, 'passive');
    assert.equal(v!.payloads, '117 118');
    assert.deepEqual(
      v!.candidates?.map((c) => [c.transport, c.port, c.type]),
      [
        ['udp', 40000, 'host'],
        ['tcp', 40000, 'host'],
      ],
    );
    assert.equal(v!.endOfCandidates, 'end-of-candidates');
    assert.deepEqual(v!.ssrcGroups, [{ semantics: 'FID', ssrcs: '1111 2222' }]);
    assert.deepEqual(v!.ext, [{ value: 9, uri: 'urn:ietf:params:rtp-hdrext:sdes:mid' }]);
    assert.ok(v!.rtcpFb?.some((fb) => fb.payload === 117 && fb.type === 'transport-cc'));
    assert.equal(String(a!.mid), '1');
    assert.equal(a!.port, 0, 'the audio section, with nothing sent in it, is rejected');
    assert.equal(a!.direction, 'inactive');
  });
});

describe('keyframe requests in RTCP', () => {
  const pli = (ssrc: number) => {
    const b = Buffer.alloc(12);
    b.writeUInt8(0x81, 0);
    b.writeUInt8(206, 1);
    b.writeUInt16BE(2, 2);
    b.writeUInt32BE(1, 4);
    b.writeUInt32BE(ssrc, 8);
    return b;
  };
  const fir = (...ssrcs: number[]) => {
    const b = Buffer.alloc(12 + 8 * ssrcs.length);
    b.writeUInt8(0x84, 0);
    b.writeUInt8(206, 1);
    b.writeUInt16BE(2 + 2 * ssrcs.length, 2);
    ssrcs.forEach((s, i) => b.writeUInt32BE(s, 12 + 8 * i));
    return b;
  };
  const receiverReport = () => {
    const b = Buffer.alloc(8);
    b.writeUInt8(0x80, 0);
    b.writeUInt8(201, 1);
    b.writeUInt16BE(1, 2);
    return b;
  };

  test('PLI and FIR in a compound packet name the layers asked for; other RTCP asks nothing, and a truncated packet is read safely', () => {
    assert.deepEqual(keyframeRequests(Buffer.concat([receiverReport(), pli(0xdeadbeef), fir(7, 8)])), [0xdeadbeef, 7, 8]);
    assert.deepEqual(keyframeRequests(receiverReport()), []);
    assert.deepEqual(keyframeRequests(pli(5).subarray(0, 10)), []);
  });
});

describe('WHIP offers read into producer parameters, and answered', () => {
  test("Chromium's offer: a track per section, Opus and its first H.264 in packetization mode 1, with its own payload types, the header extensions a producer reads, and its SSRCs", () => {
    const offer = parseWhipOffer(chromiumWhip);
    assert.deepEqual(
      offer.sections.map((s) => [s.mid, s.kind]),
      [
        ['0', 'audio'],
        ['1', 'video'],
      ],
    );
    const [audio, video] = offer.tracks;
    assert.equal(audio!.kind, 'audio');
    assert.deepEqual(
      audio!.rtpParameters.codecs.map((c) => [c.mimeType, c.payloadType, c.channels]),
      [['audio/opus', 111, 2]],
    );
    assert.deepEqual(audio!.rtpParameters.encodings, [{ ssrc: 968648166 }]);
    assert.equal(audio!.rtpParameters.rtcp?.cname, 'WY8F1aNEiEPmIMDX');
    assert.equal(video!.kind, 'video');
    assert.equal(video!.rtpParameters.mid, '1');
    const [h264] = video!.rtpParameters.codecs;
    assert.equal(video!.rtpParameters.codecs.length, 1, 'no RTX offered (the page kept H.264 alone)');
    assert.equal(h264!.payloadType, 103);
    assert.equal(h264!.parameters?.['profile-level-id'], '42001f', 'hex text, not the number sdp-transform reads');
    assert.equal(h264!.parameters?.['packetization-mode'], 1);
    assert.ok(h264!.rtcpFeedback?.some((fb) => fb.type === 'transport-cc'));
    assert.deepEqual(
      video!.rtpParameters.headerExtensions?.map((e) => [e.id, e.uri]),
      [
        [2, 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time'],
        [13, 'urn:3gpp:video-orientation'],
        [3, 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'],
        [4, 'urn:ietf:params:rtp-hdrext:sdes:mid'],
      ],
      'those a producer reads; toffset, playout-delay, video-timing and the rest are not answered',
    );
    assert.deepEqual(video!.rtpParameters.encodings, [{ ssrc: 1223201926 }]);
    assert.equal(video!.rtpParameters.rtcp?.reducedSize, true);
    assert.equal(offer.dtls.role, 'client');
  });

  test('RTX paired with the chosen H.264 comes with it, its SSRC from the FID group', () => {
    const withRtx = chromiumWhip
      .replace('m=video 35112 UDP/TLS/RTP/SAVPF 103 ', 'm=video 35112 UDP/TLS/RTP/SAVPF 103 104 ')
      .replace('a=rtpmap:107 H264/90000', 'a=rtpmap:104 rtx/90000\r\na=fmtp:104 apt=103\r\na=rtpmap:107 H264/90000')
      .replace('a=ssrc:1223201926 cname:', 'a=ssrc-group:FID 1223201926 555\r\na=ssrc:555 cname:WY8F1aNEiEPmIMDX\r\na=ssrc:1223201926 cname:');
    const video = parseWhipOffer(withRtx).tracks.find((t) => t.kind === 'video')!;
    assert.deepEqual(
      video.rtpParameters.codecs.map((c) => [c.mimeType, c.payloadType, c.parameters?.apt]),
      [
        ['video/H264', 103, undefined],
        ['video/rtx', 104, 103],
      ],
    );
    assert.deepEqual(video.rtpParameters.encodings, [{ ssrc: 1223201926, rtx: { ssrc: 555 } }]);
  });

  test('refusals: not SDP, no fingerprint (SDP_INVALID); neither H.264 in packetization mode 1 nor Opus, or simulcast (CODEC_UNSUPPORTED)', () => {
    assert.throws(() => parseWhipOffer('hello'), refusedWith('SDP_INVALID'));
    assert.throws(() => parseWhipOffer(chromiumWhip.replace(/a=fingerprint:.*\r?\n/g, '')), refusedWith('SDP_INVALID'));
    const noOpus = chromiumWhip.replace(/a=rtpmap:111 opus/, 'a=rtpmap:111 speex');
    const noH264 = noOpus.replace(/packetization-mode=1/g, 'packetization-mode=0');
    assert.equal(parseWhipOffer(noOpus).tracks.length, 1, 'video alone is taken');
    assert.throws(() => parseWhipOffer(noH264), refusedWith('CODEC_UNSUPPORTED'));
    const simulcast = chromiumWhip.replace('a=mid:1\r\n', 'a=mid:1\r\na=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n');
    assert.throws(() => parseWhipOffer(simulcast), refusedWith('CODEC_UNSUPPORTED'));
  });

  test("the answer: recvonly sections with the publisher's own payload types and extension ids, no SSRC of ours, ICE-lite with every candidate, DTLS passive", () => {
    const offer = parseWhipOffer(chromiumWhip);
    const tracks = offer.tracks.map((t) => ({ ...t, rtpParameters: { ...t.rtpParameters, encodings: [] }, streamId: '', trackId: '' }));
    const answer = sdpTransform.parse(renderAnswer(offer, transport, tracks, 'recvonly'));
    assert.equal(answer.icelite, 'ice-lite');
    assert.equal(String(answer.groups?.[0]?.mids), '0 1');
    const [a, v] = answer.media;
    for (const m of [a!, v!]) {
      assert.equal(m.direction, 'recvonly');
      assert.equal(m.setup, 'passive');
      assert.equal(m.ssrcs?.length ?? 0, 0);
      assert.equal(m.msid, undefined);
      assert.equal(m.endOfCandidates, 'end-of-candidates');
      assert.equal(m.candidates?.length, 2);
    }
    assert.equal(String(a!.payloads), '111');
    assert.equal(String(v!.payloads), '103');
    assert.deepEqual(
      v!.ext?.map((e) => e.value),
      [2, 13, 3, 4],
    );
  });
});
