/**
 * The contract between the relay and werift (pinned in package.json): the
 * internals our send path reaches into, checked on real connected peers, and the
 * refusals the engine promises for offers it cannot take. A werift upgrade that
 * moves any of it fails here first, not in a browser test.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:dgram';
import { after, describe, test } from 'node:test';
import { RTCPeerConnection, useH264, useNACK, useOPUS, usePLI, useVP8, type RtpPacket } from 'werift';
import { RelayError } from '../errors.ts';
import type { EgressSession } from './webrtc-engine.ts';
import { weriftDtls, WeriftEngine } from './werift-engine.ts';

const engine = new WeriftEngine({ announcedAddresses: [], iceServers: [] });

function peer(): RTCPeerConnection {
  return new RTCPeerConnection({
    codecs: { video: [useH264({ rtcpFeedback: [usePLI(), useNACK()] })], audio: [useOPUS()] },
    headerExtensions: { video: [], audio: [] },
    bundlePolicy: 'max-bundle',
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function recvonlyOffer(pc: RTCPeerConnection): Promise<string> {
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription!.sdp;
}

const refusedWith = (code: string) => (err: unknown) => err instanceof RelayError && err.code === code;

describe('werift behind the WebRTC engine', () => {
  const closing: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const close of closing) await close();
  });

  test('a viewer connects, and the RTP our own send path protects and sends decrypts at a werift peer, in order', async () => {
    const client = peer();
    closing.push(() => client.close());
    const received: RtpPacket[] = [];
    client.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => track.kind === 'video' && received.push(rtp)));
    const session: EgressSession = await engine.egress(await recvonlyOffer(client));
    closing.push(() => session.close());
    const connected = new Promise<void>((resolve) => session.onConnected(resolve));
    await client.setRemoteDescription({ type: 'answer', sdp: session.answer });
    await connected;
    // Until the peer's own DTLS side is done, what arrives cannot be decrypted: keep sending.
    let n = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 5; i++, n++) {
        session.sendVideo({ sequenceNumber: n & 0xffff, timestamp: n * 3000, marker: true, payload: Buffer.from([0x65, n & 0xff, 0xaa]), wallMs: Date.now() });
      }
    }, 20);
    try {
      await until('20 video packets at the peer', () => received.length >= 20);
    } finally {
      clearInterval(timer);
    }
    const firstSent = received[0]!.payload[1]!;
    received.forEach((rtp, i) => {
      assert.deepEqual([...rtp.payload], [0x65, (firstSent + i) & 0xff, 0xaa], `packet ${i}: a contiguous run of what was sent`);
      assert.equal((rtp.header.sequenceNumber - received[0]!.header.sequenceNumber) & 0xffff, i, 'sequence numbers contiguous');
    });
  });

  test('the internals the send path reads exist on a connected werift peer: DTLS state, SRTP session keys, the nominated pair and its UDP socket', async () => {
    const a = peer();
    const b = peer();
    closing.push(
      () => a.close(),
      () => b.close(),
    );
    a.addTransceiver('video', { direction: 'sendonly' });
    b.onIceCandidate.subscribe(() => {});
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    await until('both peers connected', () => a.connectionState === 'connected' && b.connectionState === 'connected');
    const dtls = weriftDtls(a.getTransceivers()[0]!.sender);
    assert.ok(dtls, 'sender.dtlsTransport');
    assert.equal(dtls.state, 'connected');
    const ctx = dtls.srtp?.localContext;
    assert.ok(ctx, 'dtlsTransport.srtp.localContext');
    assert.equal(typeof ctx.profile, 'number');
    for (const key of ['srtpSessionKey', 'srtpSessionSalt', 'srtpSessionAuthTag'] as const) assert.ok(Buffer.isBuffer(ctx[key]), key);
    const connection = dtls.iceTransport.connection;
    assert.equal(connection.canSendApplicationData(), true);
    const pair = connection.nominated;
    assert.ok(pair, 'iceTransport.connection.nominated');
    assert.equal(typeof pair.remoteAddr[0], 'string');
    assert.equal(typeof pair.remoteAddr[1], 'number');
    assert.ok(pair.protocol.transport?.socket instanceof Socket, 'the pair has a dgram socket to send on');
  });

  test('offers the engine cannot take are refused with a stable code, never another error', async () => {
    // No media section at all (sdp-sessions' readOffer refuses such a body before the engine sees it).
    await assert.rejects(engine.egress('v=0\r\nthis is not SDP\r\n'), refusedWith('CODEC_UNSUPPORTED'));
    const pc = peer();
    closing.push(() => pc.close());
    const offer = await recvonlyOffer(pc);
    // Media sections without a mid, in a bundle that names them; a media kind werift does not know.
    const noMid = offer
      .split('\r\n')
      .filter((l) => !l.startsWith('a=mid:'))
      .join('\r\n');
    await assert.rejects(engine.egress(noMid), refusedWith('SDP_INVALID'));
    await assert.rejects(engine.egress(offer.replace('m=audio', 'm=text')), refusedWith('SDP_INVALID'));
    // Media, but neither H.264 nor Opus.
    const vp8Only = new RTCPeerConnection({ codecs: { video: [useVP8()], audio: [] } });
    closing.push(() => vp8Only.close());
    vp8Only.addTransceiver('video', { direction: 'recvonly' });
    await vp8Only.setLocalDescription(await vp8Only.createOffer());
    await assert.rejects(engine.ingest(vp8Only.localDescription!.sdp), refusedWith('CODEC_UNSUPPORTED'));
  });
});
