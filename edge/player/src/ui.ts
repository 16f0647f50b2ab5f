import type { RewindElements } from './rewind.ts';

// The watch page's controls: the state badge and overlay, the latency and media
// info, the quality selector and the unmute button. Nothing here decides anything.

export type PlayerState = 'connecting' | 'offline' | 'live' | 'ended' | 'error' | 'rewind';

/** The page's elements the player drives (watch.html). */
export interface PlayerElements {
  video: HTMLVideoElement;
  overlay: HTMLElement;
  /** The card shown in place of the picture when the stream has no video. */
  audioOnly?: HTMLElement;
  badge: HTMLElement;
  latency: HTMLElement;
  info: HTMLElement;
  unmute: HTMLButtonElement;
  rendition: HTMLSelectElement;
  /** The rewind bar and the recording's picture (watch.html has them; a page without them has no rewind). */
  rewind?: RewindElements | undefined;
}

const MESSAGES: Partial<Record<PlayerState, string>> = {
  connecting: 'Connecting…',
  offline: 'The stream is offline. This page starts playing when it goes live.',
  ended: 'The stream has ended. This page starts playing when it comes back.',
};

export class PlayerUi {
  private readonly onUnmute = () => {
    this.el.video.muted = false;
    this.el.unmute.hidden = true;
  };
  private onPick: ((choice: string) => void) | undefined;
  private readonly onChange = () => this.onPick?.(this.el.rendition.value);

  constructor(private readonly el: PlayerElements) {
    el.unmute.addEventListener('click', this.onUnmute);
    el.rendition.addEventListener('change', this.onChange);
  }

  state(state: PlayerState, text?: string): void {
    this.el.badge.textContent = state;
    this.el.badge.className = `badge ${state}`;
    this.el.overlay.textContent = text ?? MESSAGES[state] ?? '';
    this.el.overlay.hidden = state === 'live' || state === 'rewind';
  }

  latency(ms: number | undefined): void {
    this.el.latency.textContent = ms === undefined ? '' : `${(ms / 1000).toFixed(2)} s behind live`;
  }

  info(text: string): void {
    this.el.info.textContent = text;
  }

  /** The stream has no video: a card says so where the picture would be. */
  audioOnly(on: boolean): void {
    if (this.el.audioOnly) this.el.audioOnly.hidden = !on;
  }

  /** Autoplay with sound needs a gesture: the player plays muted and offers this. */
  offerUnmute(): void {
    this.el.unmute.hidden = false;
  }

  /** The viewer picks `auto` or a rendition in the selector. */
  picked(handler: (choice: string) => void): void {
    this.onPick = handler;
  }

  /** The selector's choices: Auto, then every rendition (the source with its height). True when they changed. */
  renditions(list: { name: string; height?: number }[]): boolean {
    const select = this.el.rendition;
    const names = ['auto', ...list.map((r) => r.name)];
    const changed = names.join() !== Array.from(select.options, (o) => o.value).join();
    if (changed) {
      select.replaceChildren(
        new Option('Auto', 'auto'),
        ...list.map((r) => new Option(r.name === 'source' ? `source${r.height ? ` (${r.height}p)` : ''}` : r.name, r.name)),
      );
    }
    select.disabled = list.length < 2;
    return changed;
  }

  /** Shows what plays: `Auto (<rendition>)` in auto mode, or the rendition picked. */
  showRendition(auto: boolean, rendition: string): void {
    const select = this.el.rendition;
    if (auto) {
      const option = select.querySelector<HTMLOptionElement>('option[value="auto"]');
      if (option) option.textContent = `Auto (${rendition})`;
      select.value = 'auto';
    } else {
      select.value = rendition;
    }
  }

  /** Over WebRTC there is one rendition: the selector says which. */
  webrtc(rendition: string, audioOnly: boolean): void {
    this.el.rendition.replaceChildren(new Option(`WebRTC (${rendition})`, rendition));
    this.el.rendition.disabled = true;
    this.info(audioOnly ? 'WebRTC · audio only' : 'WebRTC');
    this.audioOnly(audioOnly);
  }

  destroy(): void {
    this.el.unmute.removeEventListener('click', this.onUnmute);
    this.el.rendition.removeEventListener('change', this.onChange);
  }
}
