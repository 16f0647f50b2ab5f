import { RelayError } from '../errors.ts';

const SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export interface AacConfig {
  objectType: number;
  sampleRate: number;
  channels: number;
  codecString: string;
}

/** Parses the start of an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1). */
export function parseAudioSpecificConfig(asc: Buffer): AacConfig {
  if (asc.length < 2) throw new RelayError('CODEC_UNSUPPORTED', 'AudioSpecificConfig too short');
  const objectType = asc[0]! >> 3;
  const frequencyIndex = ((asc[0]! & 7) << 1) | (asc[1]! >> 7);
  let sampleRate: number | undefined;
  let channelsAt = 1;
  if (frequencyIndex === 15) {
    if (asc.length < 5) throw new RelayError('CODEC_UNSUPPORTED', 'AudioSpecificConfig too short');
    sampleRate = ((asc[1]! & 0x7f) << 17) | (asc[2]! << 9) | (asc[3]! << 1) | (asc[4]! >> 7);
    channelsAt = 4;
  } else {
    sampleRate = SAMPLE_RATES[frequencyIndex];
  }
  if (objectType === 0 || objectType === 31 || !sampleRate) {
    throw new RelayError('CODEC_UNSUPPORTED', `AAC object type ${objectType}, frequency index ${frequencyIndex}`);
  }
  const channels = channelsAt === 1 ? (asc[1]! >> 3) & 0x0f : (asc[4]! >> 3) & 0x0f;
  return { objectType, sampleRate, channels, codecString: `mp4a.40.${objectType}` };
}

/** Samples per AAC frame (every profile the relay carries uses 1024). */
export const AAC_FRAME_SAMPLES = 1024;
