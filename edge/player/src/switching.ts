// Rendition switching: from one rendition to another into the same SourceBuffer,
// without a gap; the ABR (abr.ts) decides when, this carries it out.

import type { ControlMessage } from '../../protocol.ts';
import { presentationTime, startsWithKeyframe } from './fmp4.ts';
import { waiting } from './latency.ts';
import type { MediaBuffer } from './media-buffer.ts';
import { Transport } from './transport.ts';

export type InitMessage = Extract<ControlMessage, { type: 'init' }>;

/** A switch whose keyframe has not come by then is abandoned (transcoded GOPs are 1 s by default). */
const SWITCH_GIVE_UP_MS = 5000;

/** What a switch needs of the player. */
export interface SwitchHost {
  readonly video: HTMLVideoElement;
  readonly transport: Transport;
  readonly buffer: MediaBuffer;
  /** The rendition playing now. */
  current(): string;
  /** Starts the media afresh on `name` (a switch to or from the source, or an urgent one that lost its socket). */
  restart(name: string, counted: boolean): void;
  /** The switch is done: `name` plays now, as `init` describes it. */
  switched(name: string, init: InitMessage): void;
  /** A fragment of the new rendition goes to the buffer (its prft read first). */
  fragment(data: ArrayBuffer): void;
  /** Media bytes received on the switch's socket (the ABR's rate). */
  received(bytes: number): void;
  /** After an urgent switch: playback goes on from here once the new data covers it. */
  resumeFrom(time: number): void;
  /** The switch up was abandoned (no keyframe in time): a failed try for the ABR. */
  abandoned(): void;
  note(what: string): void;
}

interface Switch {
  socket: WebSocket;
  name: string;
  urgent: boolean;
  initMsg: InitMessage | undefined;
  initSegment: ArrayBuffer | undefined;
  /** The new rendition's keyframe to switch at (s). */
  switchAt: number | undefined;
  /** Its fragments received from that keyframe on. */
  pending: ArrayBuffer[] | undefined;
  deadline: ReturnType<typeof setTimeout> | undefined;
  giveUp: ReturnType<typeof setTimeout> | undefined;
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
export class RenditionSwitch {
  private active: Switch | undefined;

  constructor(private readonly host: SwitchHost) {}

  get inProgress(): boolean {
    return this.active !== undefined;
  }

  /** An urgent switch dropped the old rendition: what is left of it must last. */
  get urgent(): boolean {
    return this.active?.urgent === true;
  }

  switchTo(name: string, urgent = false): void {
    const { host } = this;
    const ws = host.transport.ws;
    if (!ws || name === host.current() || this.active?.name === name) return;
    this.cancel();
    if (name === 'source' || host.current() === 'source') {
      // The source keeps the publisher's B-frames, and splicing into or out of them
      // stalled Chromium's decoder in our tests: such a switch starts the media afresh
      // (a short hitch). Between transcoded renditions the switch is seamless.
      host.note(`switching to ${name} (media restart)`);
      Transport.retire(ws);
      host.restart(name, true);
      return;
    }
    const socket = new WebSocket(host.transport.urlFor(ws.url, name, { routed: '1', start: urgent ? undefined : 'next' }));
    socket.binaryType = 'arraybuffer';
    const sw: Switch = {
      socket,
      name,
      urgent,
      initMsg: undefined,
      initSegment: undefined,
      switchAt: undefined,
      pending: undefined,
      deadline: undefined,
      giveUp: undefined,
    };
    this.active = sw;
    host.note(`switching to ${name}${urgent ? ' (urgent)' : ''}`);
    // Taking the cached GOP while the old socket still fed made things worse (the
    // burst competed with the old rendition): the old one goes now.
    if (urgent) Transport.retire(ws);
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => this.message(sw, event.data);
    // A link too slow for the new rendition may never bring its keyframe: give up, and the
    // ABR counts it as a failed try (it decides nothing while a switch is in progress).
    sw.giveUp = setTimeout(() => {
      if (this.active !== sw || sw.switchAt !== undefined) return;
      host.note(`switch to ${name} abandoned: no keyframe in time`);
      this.active = undefined;
      Transport.retire(socket);
      // The old socket is gone already when urgent: start afresh on the new rendition.
      if (urgent) host.restart(name, false);
      else host.abandoned();
    }, SWITCH_GIVE_UP_MS);
    socket.onclose = () => {
      if (this.active !== sw) return;
      this.active = undefined;
      // Nothing feeds the player now: connect again, to the rendition we were going to.
      if (urgent) host.restart(name, false);
    };
  }

  /**
   * A fragment of the current rendition while a switch waits for it to reach the
   * switch point: true when the switch takes over instead (the fragment is dropped).
   */
  handOver(data: ArrayBuffer, timescales: Record<number, number>): boolean {
    const sw = this.active;
    if (sw?.switchAt === undefined) return false;
    const at = presentationTime(data, timescales);
    if (at !== undefined && at < sw.switchAt - 0.001) return false;
    this.cutOver(sw);
    return true;
  }

  /** Stops a switch in progress, if any. */
  cancel(): void {
    const sw = this.active;
    if (!sw) return;
    this.active = undefined;
    clearTimeout(sw.deadline);
    clearTimeout(sw.giveUp);
    sw.socket.onclose = null;
    sw.socket.onmessage = null;
    sw.socket.close();
  }

  private message(sw: Switch, data: ArrayBuffer | string): void {
    const { host } = this;
    if (this.active !== sw) return;
    if (typeof data === 'string') {
      const msg = JSON.parse(data) as ControlMessage;
      if (msg.type === 'init') sw.initMsg = msg;
      return;
    }
    host.received(data.byteLength);
    if (!sw.initSegment) {
      sw.initSegment = data;
      return;
    }
    if (sw.pending && !sw.urgent) {
      sw.pending.push(data);
      return;
    }
    // The new rendition's keyframe to switch at: one still ahead of the playhead
    // (a transcoded rendition runs behind the source). Hand over when the old one
    // reaches its time.
    const at = presentationTime(data, sw.initMsg?.timescales ?? {});
    // On the media's clock, as the fragments' times are (the element's is shifted: see MediaBuffer.offset).
    const playhead = host.video.currentTime - host.buffer.offset;
    if (sw.urgent) {
      // Keep what is left of the old rendition playing until the new one has a little
      // more than it needs to go on from the playhead (its keyframe may be behind it).
      if (sw.switchAt === undefined) {
        if (at === undefined || !startsWithKeyframe(data)) return;
        sw.switchAt = at;
        sw.pending = [];
        host.note(`urgent switch point ${at.toFixed(3)} (playhead ${playhead.toFixed(3)})`);
      }
      sw.pending!.push(data);
      if ((at !== undefined && at >= Math.max(playhead, sw.switchAt) + 0.25) || waiting(host.video)) {
        host.resumeFrom(sw.switchAt);
        this.cutOver(sw);
      }
      return;
    }
    if (at === undefined || !startsWithKeyframe(data) || at < playhead + 0.15) return;
    sw.switchAt = at;
    host.note(`switch point ${at.toFixed(3)} (playhead ${playhead.toFixed(3)}, buffered to ${bufferedEnd(host.video)})`);
    sw.pending = [data];
    sw.deadline = setTimeout(() => this.cutOver(sw), 1500);
  }

  /**
   * Hands over from the old rendition to the new one. The old one may lag (a
   * transcoded rendition runs behind the source): its frames are appended up to the
   * new keyframe's presentation time, so the buffer has no hole.
   */
  private cutOver(sw: Switch): void {
    const { host } = this;
    if (this.active !== sw || !sw.initMsg || !sw.initSegment || sw.switchAt === undefined) return;
    host.note(`cut over at playhead ${host.video.currentTime.toFixed(3)}, buffered to ${bufferedEnd(host.video)}`);
    clearTimeout(sw.deadline);
    clearTimeout(sw.giveUp);
    this.active = undefined;
    Transport.retire(host.transport.ws);
    // Reconnects later go to the same edge, for the rendition playing, with a GOP to start from.
    const next = new URL(sw.socket.url);
    next.searchParams.delete('start');
    host.transport.goTo(next.toString());
    host.switched(sw.name, sw.initMsg);
    const { buffer } = host;
    buffer.push({ removeFrom: sw.switchAt });
    if (sw.initMsg.mime !== buffer.mime) {
      buffer.push({ changeType: sw.initMsg.mime });
      buffer.mime = sw.initMsg.mime;
    }
    buffer.push(sw.initSegment);
    for (const fragment of sw.pending ?? []) host.fragment(fragment);
    host.transport.attach(sw.socket);
  }
}

function bufferedEnd(video: HTMLVideoElement): string {
  return video.buffered.length ? video.buffered.end(video.buffered.length - 1).toFixed(3) : '-';
}
