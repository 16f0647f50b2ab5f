// Live fMP4 over WebSocket into Media Source Extensions.
// Protocol: JSON text messages (status, init, error, reconnect); after an `init`
// message the next binary message is the init segment, then one fragment per
// video frame, each starting with a `prft` box (the relay's ingest wall-clock).

import { AbrController, autoRenditions } from './abr.js';
import { startWhep } from './whep.js';

const stream = document.body.dataset.stream;
// A playback token (when the relay requires one) rides on every socket and WHEP request.
const token = new URLSearchParams(location.search).get('token') || undefined;
const video = document.getElementById('video');
const overlay = document.getElementById('overlay');
const badge = document.getElementById('state');
const latencyEl = document.getElementById('latency');
const infoEl = document.getElementById('info');
const unmuteButton = document.getElementById('unmute');
const renditionSelect = document.getElementById('rendition');
const MediaSourceImpl = window.ManagedMediaSource || window.MediaSource;

const LIVE_TARGET_S = 0.4; // how far behind the newest frame we aim to play
const JUMP_BEHIND_S = 2.5; // further behind than this: seek instead of speeding up
const KEEP_BEHIND_S = 20; // buffer kept behind the playhead
const SWITCH_GIVE_UP_MS = 5000; // a switch whose keyframe has not come by then is abandoned (transcoded GOPs are 1 s by default)

const player = {
  state: 'connecting',
  latencyMs: undefined,
  ttffMs: undefined, // WebSocket open -> first decoded frame, this connection
  glassToGlassMs: [], // ingest -> displayed (last 600): per displayed frame over MSE, every 0.5 s over WebRTC (from sender reports)
  reconnects: 0,
  edge: undefined, // id of the edge serving this page now
  edges: [], // edges it was routed to after a failure
  inits: 0,
  rendition: new URLSearchParams(location.search).get('rendition') || 'source',
  // 'mse' (WebSocket fMP4), 'webrtc' (WHEP, falling back to MSE), or 'auto' (WHEP when the stream has a WebRTC rendition).
  requested: new URLSearchParams(location.search).get('protocol') || document.body.dataset.protocol || 'mse',
  protocol: undefined, // what plays now: 'webrtc' or 'mse'
  fallback: undefined, // why WHEP was not used, when it was asked for
  renditions: [],
  // Automatic rendition choice, unless the URL or the viewer picked one.
  abr: { mode: new URLSearchParams(location.search).get('rendition') ? 'manual' : 'auto', log: [], rateKbps: undefined },
  switches: 0,
  receivedS: undefined, // the newest media time received (s)
  keyframeS: undefined, // the newest keyframe received (s)
  presentedAt: [], // performance.now() of each frame shown (last 900): the gaps are what a viewer sees as freezes
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
let currentMime;
let switching; // a rendition switch in progress: { socket, name, initMsg, initSegment }
let lastTrim = 0;
let rxBytes = 0; // media bytes received on every socket: over a congested link, its rate is the link's
let receivedS; // the newest media time received (s): how fast it moves tells whether the link keeps up
let resumeFrom; // after an urgent switch: the new rendition's keyframe, which may be behind the playhead
const abr = new AbrController();
player.abr.log = abr.log;
const RATE_KEY = 'relay.player.kbps';

function setState(state, text) {
  player.state = state;
  badge.textContent = state;
  badge.className = `badge ${state}`;
  const messages = {
    connecting: 'Connecting…',
    offline: 'The stream is offline. This page starts playing when it goes live.',
    ended: 'The stream has ended. This page starts playing when it comes back.',
    error: text,
  };
  overlay.textContent = text ?? messages[state] ?? '';
  overlay.hidden = state === 'live';
}

const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const ownUrl = `${scheme}://${location.host}/ws/${encodeURIComponent(stream)}${location.search.includes('routed=1') ? '?routed=1' : ''}`;

/** The URL of a socket for `rendition` on the edge of `base` (a ws URL). */
function withRendition(base, rendition, extra = {}) {
  const url = new URL(base);
  if (token) url.searchParams.set('token', token);
  if (rendition === 'source') url.searchParams.delete('rendition');
  else url.searchParams.set('rendition', rendition);
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  return url.toString();
}

function connect() {
  const socket = new WebSocket(withRendition(wsUrl ?? ownUrl, player.rendition));
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => {
    openedAt = performance.now();
    firstFrameSeen = false;
    retryMs = 500;
  };
  attach(socket);
}

/** Makes `socket` the one feeding the player. */
function attach(socket) {
  ws = socket;
  note(`attach ${socket.url}`);
  let redirected = false;
  socket.onmessage = (event) => {
    if (typeof event.data !== 'string') {
      rxBytes += event.data.byteLength;
      return media(event.data);
    }
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
    if (event.code === 4400 || event.code === 4401 || event.code === 4403 || event.code === 4404) {
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
      const res = await fetch(`${base}/api/route/${encodeURIComponent(stream)}?exclude=${encodeURIComponent(exclude)}`, {
        signal: AbortSignal.timeout(800),
        cache: 'no-store',
      });
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
  if (msg.type !== 'hello') note(`control ${msg.type}${msg.state ? ` ${msg.state}` : ''}${msg.code ? ` ${msg.code}` : ''}`);
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
      infoEl.textContent = describe(msg);
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
  receivedS = resumeFrom = undefined;
  sourceBuffer = undefined;
  currentMime = mime;
  if (!MediaSourceImpl || !MediaSourceImpl.isTypeSupported(mime)) {
    setState('error', `This browser cannot play ${mime}.`);
    return;
  }
  decodedBefore += video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
  mediaSource = new MediaSourceImpl();
  const ms = mediaSource;
  video.src = URL.createObjectURL(ms);
  ms.addEventListener(
    'sourceopen',
    () => {
      if (ms !== mediaSource) return;
      URL.revokeObjectURL(video.src);
      sourceBuffer = ms.addSourceBuffer(mime);
      sourceBuffer.mode = 'segments';
      sourceBuffer.addEventListener('updateend', appended);
      pump();
    },
    { once: true },
  );
}

function media(data) {
  // During a rendition switch the old socket feeds up to the new keyframe's time, then hands over.
  if (switching?.switchAt !== undefined && !expectInitSegment) {
    const at = presentationTime(data, timescales);
    if (at === undefined || at >= switching.switchAt - 0.001) {
      cutOver(switching);
      return;
    }
  }
  if (expectInitSegment) {
    expectInitSegment = false;
    queue.unshift(data);
  } else {
    readProducerTime(data);
    queue.push(data);
  }
  pump();
}

/** A fragment's prft v1 box: size(4) 'prft'(4) version/flags(4) track(4) ntp(8) media_time(8). */
function readPrft(data) {
  if (data.byteLength < 32) return undefined;
  const view = new DataView(data);
  if (view.getUint32(4) !== 0x70726674) return undefined;
  return {
    track: view.getUint32(12),
    wall: (view.getUint32(16) - 2208988800) * 1000 + (view.getUint32(20) / 4294967296) * 1000,
    ticks: view.getUint32(24) * 4294967296 + view.getUint32(28),
  };
}

function readProducerTime(data) {
  const prft = readPrft(data);
  if (!prft) return;
  const at = prft.ticks / (timescales[prft.track] || 90000);
  if (receivedS === undefined || at > receivedS) receivedS = player.receivedS = at;
  if (prft.track === 1 && startsWithKeyframe(data)) player.keyframeS = at;
  clockMap.push({ media: at, wall: prft.wall });
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

/** Queue entries are media (ArrayBuffer) or, for a rendition switch, a step: { removeFrom } or { changeType }. */
const isStep = (q) => !(q instanceof ArrayBuffer);

function pump() {
  if (!sourceBuffer || sourceBuffer.updating || queue.length === 0) return;
  if (isStep(queue[0])) {
    const step = queue.shift();
    try {
      if (step.removeFrom !== undefined) {
        // Old rendition's frames from the switch point on go, so that nothing overlaps the new ones.
        const end = video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0;
        if (end > step.removeFrom) return sourceBuffer.remove(step.removeFrom, end + 1); // continues on updateend
      } else if (step.changeType) {
        sourceBuffer.changeType(step.changeType);
      }
    } catch (err) {
      player.errors.push(`switch step: ${err}`);
    }
    return pump();
  }
  // Everything waiting up to the next step goes in one append (a joining viewer gets a whole GOP at once).
  const upTo = queue.findIndex(isStep);
  const batch = upTo < 0 ? queue : queue.slice(0, upTo);
  if (batch.length === 0) return;
  queue = upTo < 0 ? [] : queue.slice(upTo);
  const data = batch.length === 1 ? batch[0] : concat(batch);
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
  resume();
  if (player.state === 'live' && video.buffered.length > 0 && (video.paused || video.currentTime < video.buffered.start(0))) keepLive();
  pump();
}

/** Whether playback wants data it does not have. */
const waiting = () => !video.paused && video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA;

/**
 * After an urgent switch, once the new rendition covers where playback should go on
 * (the playhead, or the new keyframe if that is ahead) with a little to spare: seek
 * there. The seek makes the decoder start again from the new keyframe; the old data
 * under the playhead is gone, or there is a gap before the keyframe.
 */
function resume() {
  if (resumeFrom === undefined || video.buffered.length === 0) return;
  const target = Math.max(video.currentTime, resumeFrom);
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= target + 0.001 && b.end(i) >= target + 0.2) {
      note(`resume at ${target.toFixed(3)} (playhead ${video.currentTime.toFixed(3)}, keyframe ${resumeFrom.toFixed(3)})`);
      resumeFrom = undefined;
      video.currentTime = target;
      return;
    }
  }
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
    // Chromium waits a little before the end of a range (measured: 0.15 s), not only at it.
    const slack = waiting() ? 0.3 : 0.05;
    for (let i = 1; i < buffered.length; i++) {
      if (video.currentTime >= buffered.end(i - 1) - slack && video.currentTime < buffered.start(i)) video.currentTime = buffered.start(i);
    }
  }
  // Catch up by playing a little faster, or rebuild a buffer run dry by playing a little
  // slower (pitch is kept), with hysteresis so the rate does not flap. Without the slow
  // side, one pause in delivery left the playhead at the very edge of the data for good,
  // and every later jitter was a stall (seen after rendition switches).
  const behind = end - video.currentTime;
  // Nearly dry, or the old rendition already dropped by an urgent switch: half speed
  // makes what is left last twice as long, which is often the whole wait for more.
  // (Chromium stops with about 0.1 s still buffered, and once stopped it waits for
  // about 0.25 s more before it plays on: measured. Not stopping is worth a lot.)
  if (behind < 0.2 || switching?.urgent) video.playbackRate = 0.5;
  else if (behind > LIVE_TARGET_S + 0.5) video.playbackRate = 1.25;
  else if (behind > LIVE_TARGET_S + 0.15) video.playbackRate = Math.max(video.playbackRate, 1.1);
  else if (behind < LIVE_TARGET_S * 0.75 || video.playbackRate < 0.9) video.playbackRate = 0.9;
  else if (video.playbackRate > 1 ? behind < LIVE_TARGET_S + 0.03 : behind > LIVE_TARGET_S - 0.03) video.playbackRate = 1;
  if (video.paused) play();
}

function tick() {
  const buffered = video.buffered;
  if (player.state === 'live' && buffered.length > 0) {
    resume();
    keepLive();
    trim(false);
    const wall = wallClockAt(video.currentTime);
    player.latencyMs = wall === undefined ? undefined : Math.max(0, Date.now() - wall);
    latencyEl.textContent = player.latencyMs === undefined ? '' : `${(player.latencyMs / 1000).toFixed(2)} s behind live`;
  } else if (player.protocol !== 'webrtc') {
    latencyEl.textContent = '';
  }
  adapt();
}

/** Rendition info for the ABR: total bitrate from the API (video + audio). */
const abrRenditions = () => player.renditions.map((r) => ({ name: r.name, kbps: r.videoKbps && r.videoKbps + (r.audioKbps ?? 0) }));

/** Auto mode: one ABR decision per tick; see abr.js for the rules. */
function adapt() {
  if (player.abr.mode !== 'auto' || !ws || player.renditions.length === 0) return;
  const list = abrRenditions();
  const choices = autoRenditions(list);
  if (choices.length > 0 && !choices.some((r) => r.name === player.rendition) && !switching) {
    // Not on an automatic rendition (the first one unknown at start, or ours was shed): go to one.
    return switchTo(abr.initial(list, player.abr.rateKbps));
  }
  const stalled = player.state === 'live' && !video.paused && video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA;
  const next = abr.decide(
    {
      now: performance.now(),
      bytes: rxBytes,
      latencyMs: player.latencyMs,
      stalled,
      switching: switching !== undefined,
      receivedS: player.state === 'live' ? receivedS : undefined,
    },
    list,
    player.rendition,
  );
  const rate = abr.rateKbps();
  if (rate !== undefined) player.abr.rateKbps = rate;
  if (next) {
    const [, from, to, why] = abr.log.at(-1);
    note(`abr: ${from} -> ${to}: ${why}`);
    switchTo(next, !abr.lastSwitch.up);
  }
}

// The last rate measured is where the next visit starts.
setInterval(() => {
  if (player.abr.rateKbps !== undefined) {
    try {
      localStorage.setItem(RATE_KEY, String(Math.round(player.abr.rateKbps)));
    } catch {
      // storage may be unavailable (private mode): start from the default guess next time
    }
  }
}, 5000);

function showRendition() {
  if (player.abr.mode === 'auto') {
    const auto = renditionSelect.querySelector('option[value="auto"]');
    if (auto) auto.textContent = `Auto (${player.rendition})`;
    renditionSelect.value = 'auto';
  } else {
    renditionSelect.value = player.rendition;
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

function onFrame(now, meta) {
  player.presentedAt.push(now);
  if (player.presentedAt.length > 900) player.presentedAt.shift();
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

/**
 * Switches rendition without a gap: a second socket asks for the new rendition
 * from its next keyframe; the current one keeps feeding until that keyframe
 * arrives; then the new init and fragments go into the same SourceBuffer (all
 * renditions share one presentation timeline, so nothing is reset).
 *
 * `urgent` (the ABR going down: the link does not carry the current rendition):
 * the old socket closes at once, so that it stops taking the link, and the new
 * one starts from its cached keyframe instead of waiting up to a GOP for the
 * next. In the ABR test (a cut to 40% of the rate) the old way froze the picture
 * for 1-3 s: the wait for the next keyframe over a link still carrying the old
 * rendition.
 */
function switchTo(name, urgent = false) {
  if (!ws || name === player.rendition || switching?.name === name) return;
  switching?.socket.close();
  switching = undefined;
  if (name === 'source' || player.rendition === 'source') {
    // The source keeps the publisher's B-frames, and splicing into or out of them
    // stalled Chromium's decoder in our tests: such a switch starts the media afresh
    // (a short hitch). Between transcoded renditions the switch is seamless.
    note(`switching to ${name} (media restart)`);
    player.rendition = name;
    player.switches++;
    showRendition();
    const old = ws;
    old.onclose = null;
    old.onmessage = null;
    old.close();
    connect();
    return;
  }
  const socket = new WebSocket(withRendition(ws.url, name, { routed: '1', start: urgent ? undefined : 'next' }));
  socket.binaryType = 'arraybuffer';
  const sw = { socket, name, urgent, initMsg: undefined, initSegment: undefined };
  switching = sw;
  note(`switching to ${name}${urgent ? ' (urgent)' : ''}`);
  if (urgent) {
    // Taking the cached GOP while the old socket still fed made things worse (the
    // burst competed with the old rendition): the old one goes now.
    const old = ws;
    old.onclose = null;
    old.onmessage = null;
    old.close();
  }
  socket.onmessage = (event) => {
    if (switching !== sw) return;
    if (typeof event.data === 'string') {
      const msg = JSON.parse(event.data);
      if (msg.type === 'init') sw.initMsg = msg;
      return;
    }
    rxBytes += event.data.byteLength;
    if (!sw.initSegment) {
      sw.initSegment = event.data;
      return;
    }
    if (sw.pending) {
      sw.pending.push(event.data);
      return;
    }
    // The new rendition's keyframe to switch at: one still ahead of the playhead
    // (a transcoded rendition runs behind the source). Hand over when the old one
    // reaches its time.
    const at = presentationTime(event.data, sw.initMsg.timescales);
    if (urgent) {
      // Keep what is left of the old rendition playing until the new one has a little
      // more than it needs to go on from the playhead (its keyframe may be behind it).
      if (sw.switchAt === undefined) {
        if (at === undefined || !startsWithKeyframe(event.data)) return;
        sw.switchAt = at;
        sw.pending = [];
        note(`urgent switch point ${at.toFixed(3)} (playhead ${video.currentTime.toFixed(3)})`);
      }
      sw.pending.push(event.data);
      if ((at !== undefined && at >= Math.max(video.currentTime, sw.switchAt) + 0.25) || waiting()) {
        resumeFrom = sw.switchAt;
        cutOver(sw);
      }
      return;
    }
    if (at === undefined || !startsWithKeyframe(event.data) || at < video.currentTime + 0.15) return;
    sw.switchAt = at;
    note(
      `switch point ${at.toFixed(3)} (playhead ${video.currentTime.toFixed(3)}, buffered to ${video.buffered.length ? video.buffered.end(video.buffered.length - 1).toFixed(3) : '-'})`,
    );
    sw.pending = [event.data];
    sw.deadline = setTimeout(() => cutOver(sw), 1500);
  };
  // A link too slow for the new rendition may never bring its keyframe: give up, and the
  // ABR counts it as a failed try (it decides nothing while a switch is in progress).
  sw.giveUp = setTimeout(() => {
    if (switching !== sw || sw.switchAt !== undefined) return;
    note(`switch to ${name} abandoned: no keyframe in time`);
    switching = undefined;
    socket.onclose = null;
    socket.close();
    if (urgent) {
      // The old socket is gone already: start afresh on the new rendition.
      player.rendition = name;
      showRendition();
      connect();
    } else if (player.abr.mode === 'auto') {
      abr.abandoned(performance.now(), player.rendition);
    }
  }, SWITCH_GIVE_UP_MS);
  socket.onclose = () => {
    if (switching !== sw) return;
    switching = undefined;
    if (urgent) {
      // Nothing feeds the player now: connect again, to the rendition we were going to.
      player.rendition = name;
      showRendition();
      connect();
    }
  };
}

/**
 * Hands over from the old rendition to the new one. The old one may lag (a
 * transcoded rendition runs behind the source): its frames are appended up to the
 * new keyframe's presentation time, so the buffer has no hole.
 */
function cutOver(sw) {
  if (switching !== sw) return;
  note(
    `cut over at playhead ${video.currentTime.toFixed(3)}, buffered to ${video.buffered.length ? video.buffered.end(video.buffered.length - 1).toFixed(3) : '-'}`,
  );
  clearTimeout(sw.deadline);
  clearTimeout(sw.giveUp);
  switching = undefined;
  const old = ws;
  old.onclose = null;
  old.onmessage = null;
  old.close();
  player.rendition = sw.name;
  player.switches++;
  showRendition();
  // Reconnects later go to the same edge, for the rendition in player.rendition, with a GOP to start from.
  const next = new URL(sw.socket.url);
  next.searchParams.delete('start');
  wsUrl = withRendition(next.toString(), 'source');
  timescales = sw.initMsg.timescales;
  infoEl.textContent = describe(sw.initMsg);
  queue.push({ removeFrom: sw.switchAt });
  if (sw.initMsg.mime !== currentMime) {
    queue.push({ changeType: sw.initMsg.mime });
    currentMime = sw.initMsg.mime;
  }
  queue.push(sw.initSegment);
  for (const fragment of sw.pending) {
    readProducerTime(fragment);
    queue.push(fragment);
  }
  attach(sw.socket);
  pump();
}

/** Whether a fragment's first video sample is a sync sample (trun sample flags, ISO/IEC 14496-12). */
function startsWithKeyframe(data) {
  const view = new DataView(data);
  const boxes = (start, end, visit) => {
    for (let p = start; p + 8 <= end;) {
      const size = view.getUint32(p);
      if (size < 8 || p + size > end) return;
      visit(String.fromCharCode(view.getUint8(p + 4), view.getUint8(p + 5), view.getUint8(p + 6), view.getUint8(p + 7)), p + 8, p + size);
      p += size;
    }
  };
  let sync;
  boxes(0, data.byteLength, (type, start, end) => {
    if (type !== 'moof') return;
    boxes(start, end, (t, s, e) => {
      if (t !== 'traf') return;
      let track = 0;
      boxes(s, e, (bt, bs) => {
        if (bt === 'tfhd') track = view.getUint32(bs + 4);
        if (bt === 'trun' && track === 1 && sync === undefined) {
          const flags = view.getUint32(bs) & 0xffffff;
          let p = bs + 8 + (flags & 1 ? 4 : 0);
          if (flags & 4) return void (sync = (view.getUint32(p) & 0x10000) === 0);
          p += (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0);
          if (flags & 0x400) sync = (view.getUint32(p) & 0x10000) === 0;
        }
      });
    });
  });
  return sync === true;
}

/** A fragment's presentation time in seconds, from its prft box (undefined without one). */
function presentationTime(data, scales) {
  const prft = readPrft(data);
  return prft && prft.ticks / (scales[prft.track] || 90000);
}

function describe(msg) {
  return [msg.width && `${msg.width}×${msg.height}`, msg.mime.replace(/^.*codecs="(.*)"$/, '$1')].filter(Boolean).join(' · ');
}

/** The renditions on offer, from the API; the selector lists them. */
async function refreshRenditions() {
  try {
    const res = await fetch(`/api/streams/${encodeURIComponent(stream)}`, { cache: 'no-store' });
    if (!res.ok) return;
    const { renditions } = await res.json();
    player.renditions = renditions;
    if (player.protocol === 'webrtc') return; // one rendition over WebRTC: the selector says which
    const names = ['auto', ...renditions.map((r) => r.name)];
    if (names.join() !== [...renditionSelect.options].map((o) => o.value).join()) {
      renditionSelect.replaceChildren(
        new Option('Auto', 'auto'),
        ...renditions.map((r) => new Option(r.name === 'source' ? `source${r.height ? ` (${r.height}p)` : ''}` : r.name, r.name)),
      );
      showRendition();
    }
    renditionSelect.disabled = renditions.length < 2;
  } catch {
    // the page's node is unreachable: keep what we have
  }
}

renditionSelect.addEventListener('change', () => {
  player.abr.mode = renditionSelect.value === 'auto' ? 'auto' : 'manual';
  if (player.abr.mode === 'manual') switchTo(renditionSelect.value);
  showRendition();
});
/** For tests and the console: a rendition name picks by hand, 'auto' hands the choice back. */
player.switchTo = (name) => {
  player.abr.mode = name === 'auto' ? 'auto' : 'manual';
  if (name !== 'auto') switchTo(name);
  showRendition();
};
setInterval(refreshRenditions, 5000);

unmuteButton.addEventListener('click', () => {
  video.muted = false;
  unmuteButton.hidden = true;
});
video.muted = false;
if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onFrame);
setInterval(tick, 100);
setState('connecting');
if (player.requested !== 'mse') {
  await Promise.race([refreshRenditions(), new Promise((r) => setTimeout(r, 500))]);
  const rtc = player.renditions.find((r) => r.webrtc);
  if (!('RTCPeerConnection' in window)) player.fallback = 'this browser has no WebRTC';
  else if (!rtc && player.requested === 'auto') player.fallback = 'the stream has no WebRTC rendition';
}
if (player.requested !== 'mse' && player.fallback === undefined) {
  void playWebRtc();
} else {
  void playMse();
}

/** WHEP; on a refusal, a failed connection or no picture in time, MSE instead. */
async function playWebRtc() {
  const started = performance.now();
  try {
    const session = await startWhep({
      stream,
      token,
      video,
      note,
      onEnded: () => {
        note('whep ended: over to MSE');
        player.fallback = 'the WebRTC connection ended';
        void playMse();
      },
    });
    player.protocol = 'webrtc';
    player.rtc = session.pc; // for tests and the console: getStats()
    // Leave at once (DELETE) rather than when the edge notices the peer is gone.
    addEventListener('pagehide', session.close);
    player.ttffMs = performance.now() - started;
    watchRtcLatency(session.pc);
    player.rendition = player.renditions.find((r) => r.webrtc)?.name ?? player.rendition;
    renditionSelect.replaceChildren(new Option(`WebRTC (${player.rendition})`, player.rendition));
    renditionSelect.disabled = true;
    infoEl.textContent = 'WebRTC';
    setState('live');
  } catch (err) {
    note(`whep failed: ${err.message}`);
    player.fallback = err.message;
    await playMse();
  }
}

/** Unix epoch in NTP time (1900), ms. */
const NTP_UNIX_OFFSET_MS = 2208988800000;

/**
 * How old the picture is over WebRTC. The relay's sender reports map RTP time to
 * the stream's ingest wall-clock time, so the receiver's estimatedPlayoutTimestamp
 * (NTP, ms) is the ingest time of what plays now.
 */
function watchRtcLatency(pc) {
  const timer = setInterval(async () => {
    if (pc.connectionState === 'closed') return clearInterval(timer);
    const stats = await pc.getStats().catch(() => undefined);
    stats?.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.estimatedPlayoutTimestamp) return;
      player.latencyMs = Math.max(0, Date.now() + NTP_UNIX_OFFSET_MS - s.estimatedPlayoutTimestamp);
      player.glassToGlassMs.push(player.latencyMs);
      if (player.glassToGlassMs.length > 600) player.glassToGlassMs.shift();
      latencyEl.textContent = `${(player.latencyMs / 1000).toFixed(2)} s behind live`;
    });
  }, 500);
}

async function playMse() {
  player.protocol = 'mse';
  video.srcObject = null;
  // Auto mode starts on the rendition that fits the last rate this browser measured (the API answers in a few ms).
  if (player.abr.mode === 'auto') {
    await Promise.race([refreshRenditions(), new Promise((r) => setTimeout(r, 500))]);
    let known;
    try {
      known = Number(localStorage.getItem(RATE_KEY)) || undefined;
    } catch {
      // no storage: the default guess
    }
    player.rendition = abr.initial(abrRenditions(), known) ?? 'source';
    showRendition();
  } else {
    void refreshRenditions();
  }
  connect();
}
