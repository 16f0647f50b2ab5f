// WHEP playback (WebRTC): one recvonly peer connection, the offer with every ICE
// candidate (the relay does not trickle), the answer from POST /whep/<stream>.
// Resolves once the first frame is shown; rejects on a refusal, a failed
// connection or no picture in time, so that the player can fall back to MSE.

const GATHER_MS = 2000; // loopback and LAN candidates come in a few ms; do not wait for slow STUN forever
const FIRST_FRAME_MS = 6000;

/**
 * @param {{ stream: string, token?: string, video: HTMLVideoElement, note: (what: string) => void, onEnded: () => void }} options
 * @returns {Promise<{ close: () => void, pc: RTCPeerConnection, location: string }>}
 */
export async function startWhep({ stream, token, video, note, onEnded }) {
  const pc = new RTCPeerConnection();
  let location;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    pc.close();
    // DELETE leaves at once; keepalive lets it go out while the page unloads.
    if (location) fetch(location, { method: 'DELETE', keepalive: true }).catch(() => {});
  };
  try {
    note('whep start');
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.ontrack = (event) => {
      media.addTrack(event.track);
      if (video.srcObject !== media) video.srcObject = media;
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    note('whep offer ready');
    const headers = { 'content-type': 'application/sdp' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`/whep/${encodeURIComponent(stream)}`, { method: 'POST', headers, body: pc.localDescription.sdp });
    if (res.status !== 201) {
      const body = await res.json().catch(() => ({}));
      throw Object.assign(new Error(`WHEP refused: ${res.status} ${body.code ?? ''}`), { code: body.code });
    }
    location = new URL(res.headers.get('location'), res.url).toString();
    note(`whep session ${location}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    note('whep answer applied');
    pc.addEventListener('connectionstatechange', () => {
      note(`whep ${pc.connectionState}`);
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        close();
        onEnded();
      }
    });
    await firstFrame(video, pc);
    return { close, pc, location };
  } catch (err) {
    close();
    throw err;
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function firstFrame(video, pc) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('WHEP: no picture in time')), FIRST_FRAME_MS);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') {
        clearTimeout(timer);
        reject(new Error('WHEP: the connection failed'));
      }
    });
    const shown = () => {
      clearTimeout(timer);
      resolve();
    };
    if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(shown);
    else video.addEventListener('loadeddata', shown, { once: true });
    video.play().catch(() => {
      video.muted = true;
      video.play().catch(() => {});
    });
  });
}
