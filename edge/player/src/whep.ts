// WHEP playback (WebRTC): one recvonly peer connection, the offer with every ICE
// candidate (the relay does not trickle), the answer from POST /whep/<stream>.
// Resolves once the first frame is shown; rejects on a refusal, a failed
// connection or no picture in time, so that the player can fall back to MSE.

const GATHER_MS = 2000; // loopback and LAN candidates come in a few ms; do not wait for slow STUN forever
const FIRST_FRAME_MS = 6000;
/** Disconnected this long after playing: the session is over (consent checks go unanswered). */
const DISCONNECTED_MS = 3000;

export interface WhepOptions {
  stream: string;
  token: string | undefined;
  video: HTMLVideoElement;
  /** The rendition has no video: ask for audio alone, and wait for sound rather than a picture. */
  audioOnly?: boolean;
  note: (what: string) => void;
  /** The connection failed or closed after it played. */
  onEnded: () => void;
}

export interface WhepSession {
  /** Leaves: closes the peer connection and DELETEs the session. Safe to call twice. */
  close: () => void;
  pc: RTCPeerConnection;
  location: string;
}

/** A WHEP refusal, with the relay's stable code. */
export class WhepRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(`WHEP refused: ${status} ${code ?? ''}`);
  }
}

export async function startWhep({ stream, token, video, audioOnly = false, note, onEnded }: WhepOptions): Promise<WhepSession> {
  const pc = new RTCPeerConnection();
  let location: string | undefined;
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
    if (!audioOnly) pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.ontrack = (event) => {
      media.addTrack(event.track);
      if (video.srcObject !== media) video.srcObject = media;
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    note('whep offer ready');
    const headers: Record<string, string> = { 'content-type': 'application/sdp' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`/whep/${encodeURIComponent(stream)}`, { method: 'POST', headers, body: pc.localDescription!.sdp });
    if (res.status !== 201) {
      const body = (await res.json().catch(() => ({}))) as { code?: string };
      throw new WhepRefused(res.status, body.code);
    }
    location = new URL(res.headers.get('location') ?? '', res.url).toString();
    note(`whep session ${location}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    note('whep answer applied');
    // Failed or closed ends the session; so does disconnected for a while: the server's side is gone (its
    // worker died, its edge went away) and consent checks go unanswered, long before ICE calls it failed.
    let lost: ReturnType<typeof setTimeout> | undefined;
    const end = () => {
      clearTimeout(lost);
      if (closed) return;
      close();
      onEnded();
    };
    pc.addEventListener('connectionstatechange', () => {
      note(`whep ${pc.connectionState}`);
      clearTimeout(lost);
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') end();
      else if (pc.connectionState === 'disconnected') lost = setTimeout(end, DISCONNECTED_MS);
    });
    await firstFrame(video, pc, audioOnly);
    return { close, pc, location };
  } catch (err) {
    close();
    throw err;
  }
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function firstFrame(video: HTMLVideoElement, pc: RTCPeerConnection, audioOnly: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(audioOnly ? 'WHEP: no sound in time' : 'WHEP: no picture in time')), FIRST_FRAME_MS);
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
    // Audio only: the playhead moving. Where requestVideoFrameCallback is missing (older engines), the first loaded data.
    const element: Partial<HTMLVideoElement> = video;
    if (audioOnly) {
      const moved = () => {
        if (video.currentTime <= 0) return;
        video.removeEventListener('timeupdate', moved);
        shown();
      };
      video.addEventListener('timeupdate', moved);
    } else if (typeof element.requestVideoFrameCallback === 'function') video.requestVideoFrameCallback(shown);
    else video.addEventListener('loadeddata', shown, { once: true });
    video.play().catch(() => {
      video.muted = true;
      video.play().catch(() => {});
    });
  });
}
