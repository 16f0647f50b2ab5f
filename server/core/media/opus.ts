import { RelayError } from '../errors.ts';
import type { AudioConfig } from './frame.ts';

/** Opus always runs its clock at 48 kHz, whatever the input rate was. */
export const OPUS_SAMPLE_RATE = 48_000;

/** Samples per frame for each TOC configuration number (RFC 6716, 3.1), at 48 kHz. */
const FRAME_SAMPLES = [
  480,
  960,
  1920,
  2880,
  480,
  960,
  1920,
  2880,
  480,
  960,
  1920,
  2880, // SILK NB, MB, WB: 10, 20, 40, 60 ms
  480,
  960,
  480,
  960, // hybrid SWB, FB: 10, 20 ms
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960, // CELT: 2.5, 5, 10, 20 ms
];

/** The number of 48 kHz samples one Opus packet decodes to (RFC 6716, 3.1-3.2). */
export function opusPacketSamples(packet: Buffer): number {
  if (packet.length < 1) throw new RelayError('CODEC_UNSUPPORTED', 'empty Opus packet');
  const toc = packet[0]!;
  const perFrame = FRAME_SAMPLES[toc >> 3]!;
  switch (toc & 3) {
    case 0:
      return perFrame;
    case 1:
    case 2:
      return 2 * perFrame;
    default: {
      if (packet.length < 2) throw new RelayError('CODEC_UNSUPPORTED', 'Opus code 3 packet without a frame count');
      const frames = packet[1]! & 0x3f;
      if (frames === 0 || frames * perFrame > 5760) throw new RelayError('CODEC_UNSUPPORTED', `Opus packet of ${frames} frames`);
      return frames * perFrame;
    }
  }
}

/** The audio configuration of an Opus track. `config` is the Ogg identification header (OpusHead) when known. */
export function opusConfig(channels: number, head: Buffer = Buffer.alloc(0)): AudioConfig {
  return { codec: 'opus', config: head, codecString: 'opus', sampleRate: OPUS_SAMPLE_RATE, channels };
}
