/**
 * Chromium as a WHIP publisher (as OBS 30+ or a browser studio would be): its fake camera and microphone
 * (launch it with FAKE_MEDIA_ARGS), H.264 preferred, the offer with every candidate. Unlike a clip
 * replayed by werift, its encoder answers keyframe requests (PLI) as real publishers do.
 */
import type { Page } from 'playwright-core';

/** In the page: fake camera and microphone, H.264 preferred, an offer with every candidate. */
async function makeOffer(page: Page, size: { width: number; height: number }): Promise<string> {
  return page.evaluate(async ({ width, height }) => {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width, height, frameRate: 30 }, audio: true });
    const pc = new RTCPeerConnection();
    for (const track of media.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly' });
      if (track.kind === 'video') {
        const h264 = RTCRtpSender.getCapabilities('video')!.codecs.filter((c) => c.mimeType === 'video/H264');
        t.setCodecPreferences(h264);
      }
    }
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 2000);
    });
    (window as unknown as { pc: RTCPeerConnection }).pc = pc;
    return pc.localDescription!.sdp;
  }, size);
}

/** In the page: POST the offer (WHIP), apply the answer. */
export async function whipPublish(
  page: Page,
  url: string,
  key: string,
  size = { width: 640, height: 360 },
): Promise<{ status: number; location: string | null; body: string }> {
  const offer = await makeOffer(page, size);
  return page.evaluate(
    async ({ url, key, offer }) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${key}` }, body: offer });
      const body = await res.text();
      if (res.status === 201) await (window as unknown as { pc: RTCPeerConnection }).pc.setRemoteDescription({ type: 'answer', sdp: body });
      return { status: res.status, location: res.headers.get('location'), body };
    },
    { url, key, offer },
  );
}

/** In the page: what the publisher's own congestion control allows now, and what it sends. */
export async function publisherRate(page: Page): Promise<{ estimateKbps: number | undefined; bytesSent: number; height: number }> {
  return page.evaluate(async () => {
    const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
    const out = { estimateKbps: undefined as number | undefined, bytesSent: 0, height: 0 };
    (await pc.getStats()).forEach(
      (r: { type: string; kind?: string; nominated?: boolean; availableOutgoingBitrate?: number; bytesSent?: number; frameHeight?: number }) => {
        if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate) out.estimateKbps = Math.round(r.availableOutgoingBitrate / 1000);
        if (r.type === 'outbound-rtp' && r.kind === 'video') {
          out.bytesSent = r.bytesSent ?? 0;
          out.height = r.frameHeight ?? 0;
        }
      },
    );
    return out;
  });
}
