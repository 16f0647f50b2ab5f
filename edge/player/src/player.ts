// The live player: fMP4 over WebSocket into Media Source Extensions, or WHEP.
// Protocol (../../protocol.ts): JSON control messages (status, init, error,
// hello, redirect, reconnect); after an `init` the next binary message is the init
// segment, then one fragment per video frame, each starting with a `prft` box
// (the relay's ingest wall clock). This file wires the parts, each with one job:
// transport.ts (sockets, routing), media-buffer.ts (MSE), latency.ts (staying near
// live), switching.ts and abr.ts (renditions), whep.ts (WebRTC), ui.ts (the page).

import type { ControlMessage, RenditionInfo, StreamInfo } from '../../protocol.ts';
import { AbrController, autoRenditions, type AbrLogEntry, type AbrRendition } from './abr.ts';
import { presentationTime, readPrft, startsWithKeyframe } from './fmp4.ts';
import { ClockMap, MAX_PLAUSIBLE_MS, keepLive, watchRtcLatency } from './latency.ts';
import { canPlay, MediaBuffer, renditionMime } from './media-buffer.ts';
import { RenditionSwitch, type InitMessage } from './switching.ts';
import { Transport } from './transport.ts';
import { PlayerUi, type PlayerElements, type PlayerState } from './ui.ts';
import { startHls, type HlsSession } from './hls.ts';
import { createRewind, type Rewind } from './rewind.ts';
import { startWhep } from './whep.ts';

export type Protocol = 'mse' | 'webrtc' | 'auto' | 'hls';

export interface PlayerOptions {
  stream: string;
  /** The playback token, when the relay requires one: it rides on every socket and WHEP request. */
  token?: string | undefined;
  /** What to play: WebSocket fMP4 (`mse`), WHEP falling back to MSE (`webrtc`), or WHEP when the stream has a WebRTC rendition (`auto`). */
  protocol: Protocol;
  /** A rendition picked by the URL: no ABR until the viewer picks Auto. */
  rendition?: string | undefined;
  /**
   * HLS through the browser's own player where it has one (Safari; AirPlay, less power) rather than hls.js. Without
   * it, the browser's own HLS plays only where there is no MediaSource (iPhones before iOS 17.1).
   */
  nativeHls?: boolean;
}

/** What the player shows of itself: read by tests, the console and whoever debugs a viewer. */
export interface PlayerStats {
  state: PlayerState;
  latencyMs: number | undefined;
  /**
   * Time to the first picture shown: WebSocket open -> first decoded frame over MSE; over WebRTC, WHEP start ->
   * the first picture of either the WebSocket that bridges the keyframe wait or WebRTC, whichever came first.
   */
  ttffMs: number | undefined;
  /** WHEP start -> WebRTC's own first decoded frame (what a bare WHEP client would wait). */
  webrtcFirstFrameMs: number | undefined;
  /**
   * Ingest -> displayed (last 600): per displayed frame over MSE and HLS, and over WebRTC by each picture's RTP
   * timestamp (after a fast start; without one, every 0.5 s from sender reports that carry wall-clock time).
   */
  glassToGlassMs: number[];
  reconnects: number;
  /** WHEP sessions made again after one that played ended (its worker restarted, its edge went away). */
  whepReconnects: number;
  /** The edge serving this page now, and the edges it was routed to after failures. */
  edge: string | undefined;
  edges: string[];
  inits: number;
  /** Renditions on offer that this browser cannot decode (never picked, not listed): `name (codecs)`. */
  undecodable: string[];
  /** What plays has no video (a radio show): the page shows a card, and playback is judged by decoded audio. */
  audioOnly: boolean;
  rendition: string;
  requested: Protocol;
  /** What plays now. */
  protocol: 'mse' | 'webrtc' | 'hls' | undefined;
  /** Why WHEP was not used, when it was asked for. */
  fallback: string | undefined;
  renditions: RenditionInfo[];
  abr: { mode: 'auto' | 'manual'; log: AbrLogEntry[]; rateKbps: number | undefined };
  switches: number;
  /** The newest media time received, and the newest keyframe's (s). */
  receivedS: number | undefined;
  keyframeS: number | undefined;
  /** performance.now() of each frame shown (last 900): the gaps are what a viewer sees as freezes. */
  presentedAt: number[];
  errors: string[];
  /** The last connection events: [ms since load, what]. */
  events: [number, string][];
  /** The WHEP peer connection, while WebRTC plays. */
  rtc: RTCPeerConnection | undefined;
  /** hls.js, while it plays HLS (its levels, its bandwidth estimate). */
  hls: HlsSession['hls'];
  /** Rewind in the stream's recording (the seek bar), when the page has one. */
  rewind: Rewind | undefined;
}

export interface Player extends PlayerStats {
  /** Frames decoded since the page loaded (all MediaSources). */
  framesDecoded(): number;
  /** Audio bytes decoded, where the engine says (Chromium, WebKit); undefined elsewhere. */
  audioBytesDecoded(): number | undefined;
  /** A rendition name picks by hand; 'auto' hands the choice back to the ABR. */
  switchTo(name: string): void;
  /** Stops everything: sockets, WebRTC, timers, listeners, the MediaSource. Safe to call twice. */
  destroy(): void;
}

/** The last rate measured is where the next visit starts. */
const RATE_KEY = 'relay.player.kbps';

export function createPlayer(el: PlayerElements, options: PlayerOptions): Player {
  const { video } = el;
  const ui = new PlayerUi(el);
  const abr = new AbrController();
  const clock = new ClockMap();
  const timers: ReturnType<typeof setInterval>[] = [];
  const cleanups: (() => void)[] = [];
  let destroyed = false;
  let timescales: Record<number, number> = { 1: 90000, 2: 48000 };
  let expectInitSegment = false;
  let openedAt = 0;
  let firstFrameSeen = false;
  /** While a WebRTC fast start runs (MSE shows pictures, WHEP connects beside it): when it began. */
  let fastStartAt: number | undefined;
  /** Over WebRTC, pictures are timed by their RTP timestamps (then sender reports are not needed). */
  let rtcFramesTimed = false;
  let latencyShownAt = 0;
  let rxBytes = 0; // media bytes received on every socket: over a congested link, its rate is the link's
  let resumeFrom: number | undefined; // after an urgent switch: the new rendition's keyframe, which may be behind the playhead

  const player: Player = {
    state: 'connecting',
    latencyMs: undefined,
    ttffMs: undefined,
    webrtcFirstFrameMs: undefined,
    glassToGlassMs: [],
    reconnects: 0,
    whepReconnects: 0,
    edge: undefined,
    edges: [],
    inits: 0,
    undecodable: [],
    audioOnly: false,
    rendition: options.rendition || 'source',
    requested: options.protocol,
    protocol: undefined,
    fallback: undefined,
    renditions: [],
    abr: { mode: options.rendition ? 'manual' : 'auto', log: abr.log, rateKbps: undefined },
    switches: 0,
    receivedS: undefined,
    keyframeS: undefined,
    presentedAt: [],
    errors: [],
    events: [],
    rtc: undefined,
    hls: undefined,
    rewind: undefined,
    framesDecoded: () => buffer.framesDecoded(),
    audioBytesDecoded: () => (video as { webkitAudioDecodedByteCount?: number }).webkitAudioDecodedByteCount,
    switchTo: (name) => {
      player.abr.mode = name === 'auto' ? 'auto' : 'manual';
      if (name !== 'auto') switcher.switchTo(name);
      showRendition();
    },
    destroy,
  };

  const note = (what: string) => {
    player.events.push([Math.round(performance.now()), what]);
    if (player.events.length > 60) player.events.shift();
  };
  /** Rewinding over the WebSocket: what plays is the recording, whatever the socket says. */
  let rewinding = false;
  const setState = (state: PlayerState, text?: string) => {
    if (rewinding && state === 'live') state = 'rewind';
    player.state = state;
    ui.state(state, text);
  };
  const showRendition = () => ui.showRendition(player.abr.mode === 'auto', player.rendition);
  const play = () => {
    video.play().catch(() => {
      // Autoplay with sound needs a gesture: play muted and offer to unmute.
      video.muted = true;
      ui.offerUnmute();
      video.play().catch(() => {});
    });
  };

  const buffer = new MediaBuffer(video, {
    appended: () => {
      if (rewinding) {
        if (video.paused && buffer.seekable) play();
        return;
      }
      resume();
      if (player.state === 'live' && buffer.seekable && video.buffered.length > 0 && (video.paused || video.currentTime < video.buffered.start(0))) {
        keepLive(video, switcher.urgent, play);
      }
    },
    firstKeyframe: (batch) => {
      for (const data of batch) if (startsWithKeyframe(data)) return presentationTime(data, timescales);
      return undefined;
    },
    error: (what, fatal) => {
      player.errors.push(what);
      if (!fatal || destroyed || performance.now() - restartedAt < 2000) return;
      // Start over on a fresh connection: a new init and the GOP from its keyframe.
      restartedAt = performance.now();
      note(`media error: starting over (${what})`);
      Transport.retire(transport.ws);
      transport.connect();
    },
  });
  let restartedAt = -Infinity;
  // The element itself failed (a decoder or pipeline error): over MSE, start over like a failed append.
  const onMediaError = () => {
    if (player.protocol === 'mse' && video.error) buffer.failed(`media element: ${video.error.message || video.error.code}`);
  };
  video.addEventListener('error', onMediaError);
  cleanups.push(() => video.removeEventListener('error', onMediaError));

  const transport: Transport = new Transport(options.stream, options.token, {
    rendition: () => player.rendition,
    opened: () => {
      // A fast start counts from WHEP's start, not from this socket's opening.
      openedAt = fastStartAt ?? performance.now();
      firstFrameSeen = false;
    },
    media: (data) => {
      rxBytes += data.byteLength;
      media(data);
    },
    control,
    refused: (reason) => setState('error', `${reason}: this stream cannot be played.`),
    lost: () => {
      if (player.state === 'live' || player.state === 'connecting') setState('connecting', 'Reconnecting…');
      player.reconnects++;
    },
    note,
  });
  player.edges = transport.edges;

  const switcher = new RenditionSwitch({
    video,
    transport,
    buffer,
    current: () => player.rendition,
    restart: (name, counted) => {
      player.rendition = name;
      if (counted) player.switches++;
      showRendition();
      transport.connect();
    },
    switched: (name: string, init: InitMessage) => {
      player.rendition = name;
      player.switches++;
      showRendition();
      timescales = init.timescales;
      ui.info(describe(init));
    },
    fragment: (data) => {
      readProducerTime(data);
      buffer.push(data);
    },
    received: (bytes) => (rxBytes += bytes),
    resumeFrom: (time) => (resumeFrom = time),
    abandoned: () => {
      if (player.abr.mode === 'auto') abr.abandoned(performance.now(), player.rendition);
    },
    note,
  });

  function control(msg: ControlMessage): void {
    if (msg.type !== 'hello') note(`control ${msg.type}${'state' in msg ? ` ${msg.state}` : ''}${'code' in msg ? ` ${msg.code}` : ''}`);
    switch (msg.type) {
      case 'status':
        // `live` alone (frames again after a silence) resumes what we have; a new stream comes with `init`.
        if (msg.state !== 'live') setState(msg.state);
        else if (buffer.ready) setState('live');
        break;
      case 'init':
        player.inits++;
        timescales = msg.timescales;
        expectInitSegment = true;
        player.audioOnly = msg.mime.startsWith('audio/');
        ui.audioOnly(player.audioOnly);
        ui.info(describe(msg));
        clock.clear();
        player.receivedS = resumeFrom = undefined;
        if (!buffer.reset(msg.mime)) return void playAnother(msg.mime);
        setState('live');
        break;
      case 'error':
        player.errors.push(msg.code);
        break;
      case 'hello':
        player.edge = msg.edge;
        break;
      case 'redirect':
      case 'reconnect':
        break;
    }
  }

  function media(data: ArrayBuffer): void {
    // During a rendition switch the old socket feeds up to the new keyframe's time, then hands over.
    if (!expectInitSegment && switcher.handOver(data, timescales)) return;
    if (expectInitSegment) {
      expectInitSegment = false;
      buffer.init(data);
    } else {
      readProducerTime(data);
      buffer.push(data);
    }
  }

  function readProducerTime(data: ArrayBuffer): void {
    const prft = readPrft(data);
    if (!prft) return;
    const at = prft.ticks / (timescales[prft.track] || 90000);
    if (player.receivedS === undefined || at > player.receivedS) player.receivedS = at;
    if (prft.track === 1 && startsWithKeyframe(data)) player.keyframeS = at;
    clock.add(at, prft.wall);
  }

  /**
   * After an urgent switch, once the new rendition covers where playback should go on
   * (the playhead, or the new keyframe if that is ahead) with a little to spare: seek
   * there. The seek makes the decoder start again from the new keyframe.
   */
  function resume(): void {
    if (resumeFrom === undefined || video.buffered.length === 0) return;
    const target = Math.max(video.currentTime, resumeFrom + buffer.offset);
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= target + 0.001 && b.end(i) >= target + 0.2) {
        note(`resume at ${target.toFixed(3)} (playhead ${video.currentTime.toFixed(3)}, keyframe ${(resumeFrom + buffer.offset).toFixed(3)})`);
        resumeFrom = undefined;
        video.currentTime = target;
        return;
      }
    }
  }

  function tick(): void {
    if (rewinding) {
      // The past over the socket: paced by the edge; no jump to live, no rendition switch.
      if (buffer.seekable && video.buffered.length > 0 && video.paused) play();
      buffer.trim(false);
    }
    if (player.rewind?.active) {
      const date = player.rewind.playingDate();
      player.latencyMs = date ? Math.max(0, Date.now() - date.getTime()) : undefined;
      ui.latency(player.latencyMs);
      return;
    }
    if (player.protocol === 'hls') {
      // hls.js keeps its own distance to live (PART-HOLD-BACK); the latency is read from PROGRAM-DATE-TIME.
      const date = hlsSession?.playingDate();
      player.latencyMs = date ? Math.max(0, Date.now() - date.getTime()) : undefined;
      ui.latency(player.latencyMs);
    } else if (player.state === 'live' && buffer.seekable && video.buffered.length > 0) {
      resume();
      keepLive(video, switcher.urgent, play);
      buffer.trim(false);
      const wall = clock.wallClockAt(video.currentTime - buffer.offset);
      player.latencyMs = wall === undefined ? undefined : Math.max(0, Date.now() - wall);
      ui.latency(player.latencyMs);
    } else if (player.protocol !== 'webrtc') {
      ui.latency(undefined);
    }
    adapt();
  }

  /** Rendition info for the ABR: total bitrate from the API (video + audio). */
  const abrRenditions = (): AbrRendition[] => player.renditions.map((r) => ({ name: r.name, kbps: r.videoKbps && r.videoKbps + (r.audioKbps ?? 0) }));

  /** Auto mode: one ABR decision per tick; see abr.ts for the rules. */
  function adapt(): void {
    if (rewinding || fastStartAt !== undefined || player.abr.mode !== 'auto' || !transport.ws || player.renditions.length === 0) return;
    const list = abrRenditions();
    const choices = autoRenditions(list);
    if (choices.length > 0 && !choices.some((r) => r.name === player.rendition) && !switcher.inProgress) {
      // Not on an automatic rendition (the first one unknown at start, or ours was shed): go to one.
      const first = abr.initial(list, player.abr.rateKbps);
      return first === undefined ? undefined : switcher.switchTo(first);
    }
    const stalled = player.state === 'live' && !video.paused && video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA;
    const next = abr.decide(
      {
        now: performance.now(),
        bytes: rxBytes,
        latencyMs: player.latencyMs,
        stalled,
        switching: switcher.inProgress,
        receivedS: player.state === 'live' ? player.receivedS : undefined,
      },
      list,
      player.rendition,
    );
    const rate = abr.rateKbps();
    if (rate !== undefined) player.abr.rateKbps = rate;
    if (next) {
      const [, from, to, why] = abr.log.at(-1)!;
      note(`abr: ${from} -> ${to}: ${why}`);
      switcher.switchTo(next, !abr.lastSwitch.up);
    }
  }

  function onFrame(now: number, meta: VideoFrameCallbackMetadata): void {
    if (destroyed) return;
    player.presentedAt.push(now);
    if (player.presentedAt.length > 900) player.presentedAt.shift();
    if (!firstFrameSeen && openedAt > 0) {
      firstFrameSeen = true;
      player.ttffMs = performance.now() - openedAt;
    }
    // Over WebRTC the element's media time is the MediaStream's own: the picture's RTP timestamp says which
    // one it is (where the engine gives it), mapped by what the fast start's socket read.
    const wall =
      player.protocol === 'webrtc'
        ? meta.rtpTimestamp === undefined
          ? undefined
          : clock.wallClockAtRtp(meta.rtpTimestamp)
        : player.protocol === 'hls'
          ? hlsSession?.wallClockAt(meta.mediaTime)
          : clock.wallClockAt(meta.mediaTime - buffer.offset);
    const g2g = wall === undefined ? undefined : performance.timeOrigin + meta.expectedDisplayTime - wall;
    if (g2g !== undefined && g2g < MAX_PLAUSIBLE_MS) {
      player.glassToGlassMs.push(g2g);
      if (player.glassToGlassMs.length > 600) player.glassToGlassMs.shift();
      if (player.protocol === 'webrtc') {
        rtcFramesTimed = true;
        player.latencyMs = Math.max(0, g2g);
        if (now - latencyShownAt >= 500) {
          latencyShownAt = now;
          ui.latency(player.latencyMs);
        }
      }
    }
    video.requestVideoFrameCallback(onFrame);
  }

  /**
   * This browser cannot decode what the rendition carries (an HEVC source in Chromium):
   * over to the first rendition it can (the ladder's H.264), or say so when there is none.
   */
  async function playAnother(mime: string): Promise<void> {
    await briefly(refreshRenditions());
    const other = player.renditions.find((r) => r.name !== player.rendition);
    if (destroyed) return;
    if (!other) return setState('error', `This browser cannot play ${mime}.`);
    note(`cannot play ${mime}: over to ${other.name}`);
    Transport.retire(transport.ws); // its undecodable media must not reach the next MediaSource
    player.rendition = other.name;
    showRendition();
    transport.connect();
  }

  /** The renditions on offer, from the API, less those this browser cannot decode; the selector lists them. */
  async function refreshRenditions(): Promise<void> {
    try {
      const res = await fetch(`/api/streams/${encodeURIComponent(options.stream)}`, { cache: 'no-store' });
      if (!res.ok || destroyed) return;
      const { renditions } = (await res.json()) as StreamInfo;
      player.renditions = renditions.filter((r) => canPlay(renditionMime(r)));
      player.undecodable = renditions.filter((r) => !player.renditions.includes(r)).map((r) => `${r.name} (${r.codecs})`);
      if (player.protocol === 'webrtc') return; // one rendition over WebRTC: the selector says which
      if (ui.renditions(renditions)) showRendition();
    } catch {
      // the page's node is unreachable: keep what we have
    }
  }

  const briefly = (p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(r, 500))]);

  /** WebSocket fMP4; `rendition` pins what it plays (a WebRTC fast start shows the WebRTC rendition). */
  async function playMse(rendition?: string): Promise<void> {
    if (destroyed) return;
    player.protocol = 'mse';
    video.srcObject = null;
    if (rendition) {
      player.rendition = rendition;
      showRendition();
    } else if (player.abr.mode === 'auto') {
      // Auto mode starts on the rendition that fits the last rate this browser measured (the API answers in a few ms).
      await briefly(refreshRenditions());
      let known: number | undefined;
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
    if (!destroyed) transport.connect();
  }

  let hlsSession: HlsSession | undefined;

  /** HLS: hls.js in low-latency mode, or the browser's own HLS where it has no MediaSource. */
  async function playHls(): Promise<void> {
    if (destroyed) return;
    player.protocol = 'hls';
    video.srcObject = null;
    // Time to first frame counts from here, as over MSE it counts from the socket's opening.
    openedAt = performance.now();
    firstFrameSeen = false;
    void refreshRenditions();
    try {
      const session = await startHls({
        url: hlsUrl(),
        video,
        native: options.nativeHls ?? false,
        note,
        playing: () => {
          if (hlsWaiting) return; // what was left before EXT-X-ENDLIST: the stream has ended all the same
          if (player.state !== 'live') setState('live');
          if (video.paused) play();
        },
        failed: (why) => setState('error', `HLS: ${why}`),
        ended: onHlsEnded,
      });
      if (destroyed) return session.destroy();
      hlsSession = session;
      player.hls = session.hls;
      ui.info(session.hls ? 'HLS (hls.js)' : 'HLS');
      cleanups.push(() => session.destroy());
    } catch (err) {
      setState('error', `HLS: ${(err as Error).message}`);
    }
  }

  // HLS reached EXT-X-ENDLIST: the publication ended (or its rendition was shed). hls.js, like any HLS player,
  // reads an ended playlist no more; once the stream is live again (the publisher back, or its other
  // renditions going on), HLS starts afresh from the multivariant playlist.
  let hlsWaiting: ReturnType<typeof setTimeout> | undefined;
  function onHlsEnded(): void {
    if (player.protocol !== 'hls' || destroyed || hlsWaiting) return;
    note('hls: ended; waiting for the stream to be live again');
    setState('ended');
    const check = async () => {
      if (destroyed) return;
      if (!(await hlsLive())) return void (hlsWaiting = setTimeout(() => void check(), 2000));
      hlsWaiting = undefined;
      hlsSession?.destroy();
      hlsSession = undefined;
      setState('connecting');
      await playHls();
    };
    hlsWaiting = setTimeout(() => void check(), 1000);
  }
  cleanups.push(() => clearTimeout(hlsWaiting));

  /** Whether the stream is live over HLS: its multivariant playlist answers, and its first media playlist has not ended. */
  async function hlsLive(): Promise<boolean> {
    try {
      const multivariant = await fetch(hlsUrl(), { cache: 'no-store' });
      if (!multivariant.ok) return false;
      const first = (await multivariant.text()).split('\n').find((line) => line && !line.startsWith('#'));
      if (!first) return false;
      const media = await fetch(new URL(first, multivariant.url), { cache: 'no-store' });
      return media.ok && !(await media.text()).includes('#EXT-X-ENDLIST');
    } catch {
      return false;
    }
  }

  const hlsUrl = () => `/hls/${encodeURIComponent(options.stream)}/index.m3u8${options.token ? `?token=${encodeURIComponent(options.token)}` : ''}`;

  /** A WHEP session that played this long and then ended is made again (else: MSE). */
  const WHEP_RETRY_AFTER_MS = 10_000;

  /**
   * WHEP; on a refusal, a failed connection or no picture in time, MSE instead.
   *
   * Fast start: a WebRTC viewer's first picture waits for the stream's next keyframe (mediasoup keeps none
   * for newcomers: up to a GOP). Meanwhile the WebSocket, which starts at the edge's cached keyframe, shows
   * the same rendition at once; WHEP connects beside it on a stand-in element, and at its first picture
   * WebRTC takes the element over and the socket closes. Where MediaSource is missing, WHEP alone.
   */
  async function playWebRtc(): Promise<void> {
    const started = performance.now();
    const rtcRendition = player.renditions.find((r) => r.webrtc);
    const audioOnly = rtcRendition?.tracks === 'audio';
    const fastStart = ('MediaSource' in window || 'ManagedMediaSource' in window) && rtcRendition !== undefined;
    let stage = video;
    if (fastStart) {
      fastStartAt = started;
      stage = standIn(video);
      void playMse(rtcRendition.name);
    }
    const endFastStart = () => {
      fastStartAt = undefined;
      if (stage !== video) stage.remove();
    };
    try {
      const session = await startWhep({
        stream: options.stream,
        token: options.token,
        video: stage,
        audioOnly,
        note,
        onEnded: () => {
          if (destroyed) return;
          player.rtc = undefined;
          // A session that played a while lost its server side (a worker restarted, an edge went): WHEP again,
          // which falls back to MSE if it fails. One that ended soon after starting goes to MSE at once.
          if (performance.now() - started > WHEP_RETRY_AFTER_MS) {
            note('whep ended: WHEP again');
            player.whepReconnects++;
            void playWebRtc();
            return;
          }
          note('whep ended: over to MSE');
          player.fallback = 'the WebRTC connection ended';
          void playMse();
        },
      });
      if (destroyed) return session.close();
      if (rewinding || player.rewind?.active) {
        // The viewer went back in time meanwhile: the past plays over the socket; WebRTC is not wanted.
        note('whep ready while rewinding: closed');
        session.close();
        return;
      }
      player.webrtcFirstFrameMs = performance.now() - started;
      if (stage !== video) {
        // WebRTC takes the element over: the socket and its MediaSource go, the same tracks play on.
        note('fast start: over to WebRTC');
        player.glassToGlassMs.length = 0; // the socket's figures (its first pictures were up to a GOP old)
        transport.pause();
        buffer.detach();
        video.srcObject = stage.srcObject;
        stage.srcObject = null;
        play();
      }
      if (!firstFrameSeen) {
        firstFrameSeen = true;
        player.ttffMs = player.webrtcFirstFrameMs;
      }
      player.protocol = 'webrtc';
      player.rtc = session.pc; // for tests and the console: getStats()
      // Leave at once (DELETE) rather than when the edge notices the peer is gone.
      addEventListener('pagehide', session.close);
      cleanups.push(() => removeEventListener('pagehide', session.close), session.close);
      rtcFramesTimed = false;
      cleanups.push(
        watchRtcLatency(session.pc, (ms) => {
          if (rtcFramesTimed) return; // each picture timed already
          player.latencyMs = ms;
          player.glassToGlassMs.push(ms);
          if (player.glassToGlassMs.length > 600) player.glassToGlassMs.shift();
          ui.latency(ms);
        }),
      );
      player.rendition = rtcRendition?.name ?? player.rendition;
      player.audioOnly = audioOnly;
      ui.webrtc(player.rendition, audioOnly);
      setState('live');
    } catch (err) {
      note(`whep failed: ${(err as Error).message}`);
      player.fallback = (err as Error).message;
      // A fast start is on MSE already.
      if (stage === video) await playMse();
    } finally {
      endFastStart();
    }
  }

  function destroy(): void {
    if (destroyed) return;
    destroyed = true;
    for (const t of timers) clearInterval(t);
    for (const cleanup of cleanups.splice(0)) cleanup();
    switcher.cancel();
    transport.destroy();
    buffer.destroy();
    video.srcObject = null;
    ui.destroy();
  }

  ui.picked((choice) => {
    player.abr.mode = choice === 'auto' ? 'auto' : 'manual';
    if (player.abr.mode === 'manual') switcher.switchTo(choice);
    showRendition();
  });
  timers.push(
    setInterval(tick, 100),
    setInterval(() => void refreshRenditions(), 5000),
    setInterval(() => {
      if (player.abr.rateKbps === undefined) return;
      try {
        localStorage.setItem(RATE_KEY, String(Math.round(player.abr.rateKbps)));
      } catch {
        // storage may be unavailable (private mode): start from the default guess next time
      }
    }, 5000),
  );
  video.muted = false;
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onFrame);
  // Audio only: no picture to wait for; the first moving playhead is the first "frame".
  const onTimeUpdate = () => {
    if (!player.audioOnly || firstFrameSeen || openedAt === 0 || video.paused) return;
    firstFrameSeen = true;
    player.ttffMs = performance.now() - openedAt;
  };
  video.addEventListener('timeupdate', onTimeUpdate);
  cleanups.push(() => video.removeEventListener('timeupdate', onTimeUpdate));
  /** Rewinding: the live path stops (its socket, its HLS session; WebRTC stays connected and is only hidden). */
  function suspendLive(): void {
    setState('rewind');
    video.pause();
    video.hidden = true;
    if (player.protocol === 'mse') transport.pause();
    else if (player.protocol === 'hls') {
      hlsSession?.destroy();
      hlsSession = undefined;
    }
  }

  /** Back to live: the live path starts afresh (a new socket: an init and the GOP from its keyframe). */
  function resumeLive(): void {
    video.hidden = false;
    setState('connecting');
    if (player.protocol === 'mse') transport.connect();
    else if (player.protocol === 'hls') void playHls();
    else {
      setState('live');
      play();
    }
  }

  if (el.rewind) {
    const reconnect = () => {
      transport.pause();
      transport.connect();
    };
    player.rewind = createRewind({
      stream: options.stream,
      token: options.token,
      elements: el.rewind,
      note,
      suspendLive,
      resumeLive,
      socket: {
        video,
        usable: () => player.protocol === 'mse' && !switcher.inProgress,
        rewindTo: (at) => {
          rewinding = true;
          transport.params.at = String(Math.round(at));
          setState('rewind');
          reconnect();
        },
        live: () => {
          rewinding = false;
          delete transport.params.at;
          setState('connecting');
          reconnect();
        },
        playingDate: () => {
          const wall = clock.wallClockAt(video.currentTime - buffer.offset);
          return wall === undefined ? undefined : new Date(wall);
        },
      },
    });
    cleanups.push(() => player.rewind?.destroy());
  }

  setState('connecting');
  void (async () => {
    if (player.requested !== 'mse') {
      await briefly(refreshRenditions());
      const rtc = player.renditions.find((r) => r.webrtc);
      if (!('RTCPeerConnection' in window)) player.fallback = 'this browser has no WebRTC';
      else if (!rtc && player.requested === 'auto') player.fallback = 'the stream has no WebRTC rendition';
    }
    if (destroyed) return;
    // Neither MediaSource nor ManagedMediaSource (an older iPhone): the browser's own HLS is what plays.
    const noMse = !('MediaSource' in window) && !('ManagedMediaSource' in window);
    if (player.requested === 'hls' || (noMse && player.requested === 'mse')) {
      if (noMse) player.fallback = 'this browser has no MediaSource';
      await playHls();
    } else if (player.requested !== 'mse' && player.fallback === undefined) await playWebRtc();
    else await playMse();
  })();
  return player;
}

/** A muted, invisible element beside `video` where WHEP connects during a fast start (rendered, so that its frames are counted). */
function standIn(video: HTMLVideoElement): HTMLVideoElement {
  const stage = document.createElement('video');
  stage.muted = true;
  stage.playsInline = true;
  stage.setAttribute('aria-hidden', 'true');
  stage.style.cssText = 'position:absolute;width:2px;height:2px;opacity:0.01;pointer-events:none;left:0;top:0';
  video.after(stage);
  return stage;
}

function describe(msg: InitMessage): string {
  const size = msg.mime.startsWith('audio/') ? 'audio only' : msg.width && `${msg.width}×${msg.height}`;
  return [size, msg.mime.replace(/^.*codecs="(.*)"$/, '$1')].filter(Boolean).join(' · ');
}
