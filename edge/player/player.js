// Live fMP4 over WebSocket into Media Source Extensions.
// Protocol: JSON text messages (status, init, error, reconnect); after an `init`
// message the next binary message is the init segment, then one fragment per
// video frame, each starting with a `prft` box (the relay's ingest wall-clock).

const stream = document.body.dataset.stream;
const video = document.getElementById('video');
const overlay = document.getElementById('overlay');
const badge = document.getElementById('state');
const latencyEl = document.getElementById('latency');
const infoEl = document.getElementById('info');
const unmuteButton = document.getElementById('unmute');
const MediaSourceImpl = window.ManagedMediaSource || window.MediaSource;

const LIVE_TARGET_S = 0.4; // how far behind the newest frame we aim to play
const JUMP_BEHIND_S = 2.5; // further behind than this: seek instead of speeding up
const KEEP_BEHIND_S = 20; // buffer kept behind the playhead

const player = {
  state: 'connecting',
  latencyMs: undefined,
  ttffMs: undefined, // WebSocket open -> first decoded frame, this connection
  glassToGlassMs: [], // ingest -> displayed, per displayed frame (last 600)
  reconnects: 0,
  edge: undefined, // id of the edge serving this page now
  edges: [], // edges it was routed to after a failure
  inits: 0,
  errors: [],
  events: [], // the last connection events, for whoever debugs a player: [ms since load, what]
  // Frames decoded since the page loaded: the element's own count starts over with each MediaSource.
  framesDecoded: () => decodedBefore + (video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0),
};
window.relayPlayer = player;
const note = (what) => {
  player.events.push([Math.round(performance.now()), what]);
  if (player.events.length > 60) player.events.shift();
};

let ws;
let wsUrl; // where to connect next; starts on the page's own edge
let edgeId; // the edge serving us (from its hello)
let peers = []; // other edges' base URLs, to ask for a route if ours fails
const failedEdges = new Set();
let mediaSource;
let sourceBuffer;
let queue = [];
let expectInitSegment = false;
let timescales = { 1: 90000, 2: 48000 };
let clockMap = []; // [{ media: seconds, wall: ms }], newest last
let openedAt = 0;
let firstFrameSeen = false;
let retryMs = 500;
let decodedBefore = 0;
let lastTrim = 0;

function setState(state, text) {
  player.state = state;
  badge.textContent = state;
  badge.className = `badge ${state}`;
  const messages = { connecting: 'Connecting…', offline: 'The stream is offline. This page starts playing when it goes live.', ended: 'The stream has ended. This page starts playing when it comes back.', error: text };
  overlay.textContent = text ?? messages[state] ?? '';
  overlay.hidden = state === 'live';
}

const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const ownUrl = `${scheme}://${location.host}/ws/${encodeURIComponent(stream)}${location.search.includes('routed=1') ? '?routed=1' : ''}`;

function connect() {
  const socket = new WebSocket(wsUrl ?? ownUrl);
  ws = socket;
  note(`connect ${wsUrl ?? ownUrl}`);
  let redirected = false;
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => {
    openedAt = performance.now();
    firstFrameSeen = false;
    retryMs = 500;
  };
  socket.onmessage = (event) => {
    if (typeof event.data !== 'string') return media(event.data);
    const msg = JSON.parse(event.data);
    if (msg.type === 'redirect') {
      redirected = true;
      wsUrl = msg.url;
      edgeId = msg.edge;
    }
    control(msg);
  };
  socket.onclose = (event) => {
    note(`close ${event.code} ${event.reason}`);
    if (socket !== ws) return;
    if (event.code === 4400 || event.code === 4404) {
      setState('error', `${event.reason}: this stream cannot be played.`);
      return;
    }
    if (redirected) return connect();
    if (player.state === 'live' || player.state === 'connecting') setState('connecting', 'Reconnecting…');
    player.reconnects++;
    void failover();
  };
}

/** Our edge is gone (or draining): ask any edge we know for a route that avoids it. */
async function failover() {
  if (edgeId) failedEdges.add(edgeId);
  note(`failover, excluding ${[...failedEdges].join(',')}`);
  const exclude = [...failedEdges].join(',');
  const bases = [...new Set([location.origin, ...peers])];
  for (const base of bases) {
    try {
      const res = await fetch(`${base}/api/route/${encodeURIComponent(stream)}?exclude=${encodeURIComponent(exclude)}`, { signal: AbortSignal.timeout(800), cache: 'no-store' });
      note(`route via ${base}: ${res.status}`);
      if (!res.ok) continue;
      const route = await res.json();
      wsUrl = route.ws;
      edgeId = route.edge; // if this one fails before its hello, it is excluded next time too
      player.edges.push(route.edge);
      return connect();
    } catch (err) {
      note(`route via ${base} failed: ${err.name}`); // that edge is unreachable too: try the next
    }
  }
  // Nobody answered: try again later, the edges we excluded included.
  failedEdges.clear();
  wsUrl = undefined;
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 5000);
}

function control(msg) {
  switch (msg.type) {
    case 'status':
      // `live` alone (frames again after a silence) resumes what we have; a new stream comes with `init`.
      if (msg.state !== 'live') setState(msg.state);
      else if (sourceBuffer) setState('live');
      break;
    case 'init':
      player.inits++;
      timescales = msg.timescales;
      expectInitSegment = true;
      infoEl.textContent = [msg.width && `${msg.width}×${msg.height}`, msg.mime.replace(/^.*codecs="(.*)"$/, '$1')].filter(Boolean).join(' · ');
      resetMedia(msg.mime);
      setState('live');
      break;
    case 'error':
      player.errors.push(msg.code);
      break;
    case 'hello':
      edgeId = msg.edge;
      peers = msg.peers;
      player.edge = msg.edge;
      break;
    case 'reconnect':
      if (msg.edge) edgeId = msg.edge;
      ws.close();
      break;
  }
}

function resetMedia(mime) {
  queue = [];
  clockMap = [];
  sourceBuffer = undefined;
  if (!MediaSourceImpl || !MediaSourceImpl.isTypeSupported(mime)) {
    setState('error', `This browser cannot play ${mime}.`);
    return;
  }
  decodedBefore += video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
  mediaSource = new MediaSourceImpl();
  const ms = mediaSource;
  video.src = URL.createObjectURL(ms);
  ms.addEventListener('sourceopen', () => {
    if (ms !== mediaSource) return;
    URL.revokeObjectURL(video.src);
    sourceBuffer = ms.addSourceBuffer(mime);
    sourceBuffer.mode = 'segments';
    sourceBuffer.addEventListener('updateend', appended);
    pump();
  }, { once: true });
}

function media(data) {
  if (expectInitSegment) {
    expectInitSegment = false;
    queue.unshift(data);
  } else {
    readProducerTime(data);
    queue.push(data);
  }
  pump();
}

// prft v1: size(4) 'prft'(4) version/flags(4) track(4) ntp(8) media_time(8)
function readProducerTime(data) {
  if (data.byteLength < 32) return;
  const view = new DataView(data);
  if (view.getUint32(4) !== 0x70726674) return;
  const track = view.getUint32(12);
  const wall = (view.getUint32(16) - 2208988800) * 1000 + (view.getUint32(20) / 4294967296) * 1000;
  const mediaTicks = view.getUint32(24) * 4294967296 + view.getUint32(28);
  clockMap.push({ media: mediaTicks / (timescales[track] || 90000), wall });
  if (clockMap.length > 900) clockMap.splice(0, 300);
}

/** The ingest wall-clock time of a media time, from the nearest prft at or before it. */
function wallClockAt(mediaTime) {
  for (let i = clockMap.length - 1; i >= 0; i--) {
    const m = clockMap[i];
    if (m.media <= mediaTime + 1e-6) return m.wall + (mediaTime - m.media) * 1000;
  }
  return undefined;
}

function pump() {
  if (!sourceBuffer || sourceBuffer.updating || queue.length === 0) return;
  // Everything waiting goes in one append (a joining viewer gets a whole GOP at once).
  const data = queue.length === 1 ? queue[0] : concat(queue);
  queue = [];
  try {
    sourceBuffer.appendBuffer(data);
  } catch (err) {
    if (err.name === 'QuotaExceededError') {
      trim(true);
    } else {
      player.errors.push(String(err));
      resetMedia(sourceBuffer.mimeType ?? '');
    }
  }
}

function concat(buffers) {
  let size = 0;
  for (const b of buffers) size += b.byteLength;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out;
}

/** After an append: start playing as soon as there is something to play. */
function appended() {
  if (player.state === 'live' && video.buffered.length > 0 && (video.paused || video.currentTime < video.buffered.start(0))) keepLive();
  pump();
}

function trim(force) {
  if (!sourceBuffer || sourceBuffer.updating || video.buffered.length === 0) return;
  const now = performance.now();
  if (!force && now - lastTrim < 5000) return;
  lastTrim = now;
  const until = video.currentTime - KEEP_BEHIND_S;
  if (until > video.buffered.start(0)) sourceBuffer.remove(0, until);
}

function keepLive() {
  const buffered = video.buffered;
  const start = buffered.start(0);
  const end = buffered.end(buffered.length - 1);
  // Start, or skip a gap (a keyframe skip leaves one), or jump to live when far behind.
  if (video.currentTime < start || end - video.currentTime > JUMP_BEHIND_S) {
    video.currentTime = Math.max(start, end - LIVE_TARGET_S);
  } else {
    for (let i = 1; i < buffered.length; i++) {
      if (video.currentTime >= buffered.end(i - 1) - 0.05 && video.currentTime < buffered.start(i)) video.currentTime = buffered.start(i);
    }
  }
  // Catch up by playing a little faster (pitch is kept), with hysteresis so the rate does not flap.
  const behind = end - video.currentTime;
  if (behind > LIVE_TARGET_S + 0.5) video.playbackRate = 1.25;
  else if (behind > LIVE_TARGET_S + 0.15) video.playbackRate = Math.max(video.playbackRate, 1.1);
  else if (behind < LIVE_TARGET_S + 0.03) video.playbackRate = 1;
  if (video.paused) play();
}

function tick() {
  const buffered = video.buffered;
  if (player.state === 'live' && buffered.length > 0) {
    keepLive();
    trim(false);
    const wall = wallClockAt(video.currentTime);
    player.latencyMs = wall === undefined ? undefined : Math.max(0, Date.now() - wall);
    latencyEl.textContent = player.latencyMs === undefined ? '' : `${(player.latencyMs / 1000).toFixed(2)} s behind live`;
  } else {
    latencyEl.textContent = '';
  }
}

function play() {
  video.play().catch(() => {
    // Autoplay with sound needs a gesture: play muted and offer to unmute.
    video.muted = true;
    unmuteButton.hidden = false;
    video.play().catch(() => {});
  });
}

function onFrame(_now, meta) {
  if (!firstFrameSeen && openedAt > 0) {
    firstFrameSeen = true;
    player.ttffMs = performance.now() - openedAt;
  }
  const wall = wallClockAt(meta.mediaTime);
  if (wall !== undefined) {
    player.glassToGlassMs.push(performance.timeOrigin + meta.expectedDisplayTime - wall);
    if (player.glassToGlassMs.length > 600) player.glassToGlassMs.shift();
  }
  video.requestVideoFrameCallback(onFrame);
}

unmuteButton.addEventListener('click', () => {
  video.muted = false;
  unmuteButton.hidden = true;
});
video.muted = false;
if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onFrame);
setInterval(tick, 200);
setState('connecting');
connect();
