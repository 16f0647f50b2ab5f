// The watch page's entry: reads what the page says (stream, protocol, ?token=,
// ?rendition=, ?hls=native) and starts a player on its elements. `window.relayPlayer` is the
// player, for tests and the console.

import { createPlayer, type Player, type Protocol } from './player.ts';

declare global {
  interface Window {
    relayPlayer?: Player;
  }
}

const params = new URLSearchParams(location.search);
const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const protocol = params.get('protocol') || document.body.dataset.protocol || 'mse';
window.relayPlayer = createPlayer(
  {
    video: byId<HTMLVideoElement>('video'),
    overlay: byId('overlay'),
    audioOnly: byId('audio-only'),
    badge: byId('state'),
    latency: byId('latency'),
    info: byId('info'),
    unmute: byId<HTMLButtonElement>('unmute'),
    rendition: byId<HTMLSelectElement>('rendition'),
    rewind: {
      video: byId<HTMLVideoElement>('rewind-video'),
      seek: byId<HTMLInputElement>('rewind-seek'),
      label: byId('rewind-label'),
      live: byId<HTMLButtonElement>('rewind-live'),
      box: byId('rewind'),
    },
  },
  {
    stream: document.body.dataset.stream ?? '',
    token: params.get('token') || undefined,
    protocol: (['mse', 'webrtc', 'auto', 'hls'].includes(protocol) ? protocol : 'mse') as Protocol,
    rendition: params.get('rendition') || undefined,
    nativeHls: params.get('hls') === 'native',
  },
);
