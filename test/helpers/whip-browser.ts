/**
 * Chromium as a WHIP publisher (as OBS 30+ or a browser studio would be): its fake camera and microphone
 * (launch it with FAKE_MEDIA_ARGS), H.264 preferred, the offer with every candidate. Unlike a clip
 * replayed by werift, its encoder answers keyframe requests (PLI) as real publishers do.
 */
import type { Page } from 'playwright-core';

/** In the page: fake camera and microphone, H.264 preferred, an offer with every candidate. */
async function makeOffer(page: Page): Promise<string> {
  return page.evaluate(async () => {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 }, audio: true });
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
  });
}

/** In the page: POST the offer (WHIP), apply the answer. */
export async function whipPublish(page: Page, url: string, key: string): Promise<{ status: number; location: string | null; body: string }> {
  const offer = await makeOffer(page);
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
