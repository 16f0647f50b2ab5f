import { RelayError } from '../../errors.ts';
import type { AudioConfig, StreamInit, VideoConfig } from '../frame.ts';
import { TICKS_PER_SECOND } from '../frame.ts';
import { box, descriptor, fullBox, u16, u32, u8, UNITY_MATRIX, zeros } from './boxes.ts';

export const VIDEO_TRACK_ID = 1;
export const AUDIO_TRACK_ID = 2;
export const VIDEO_TIMESCALE = TICKS_PER_SECOND;

/** `ftyp` + `moov` for a live fragmented stream: empty sample tables, `mvex`/`trex` per track. */
export function buildInitSegment(init: StreamInit): Buffer {
  if (!init.video && !init.audio) throw new RelayError('CODEC_UNSUPPORTED', 'stream has neither video nor audio');
  if (init.audio && init.audio.codec !== 'aac' && init.audio.codec !== 'opus')
    throw new RelayError('CODEC_UNSUPPORTED', `audio codec ${init.audio.codec} in MP4`);
  const ftyp = box('ftyp', Buffer.from('isom', 'latin1'), u32(0x200), Buffer.from('isomiso6avc1mp41', 'latin1'));
  const traks: Buffer[] = [];
  const trexes: Buffer[] = [];
  if (init.video) {
    traks.push(videoTrak(init.video));
    trexes.push(trex(VIDEO_TRACK_ID));
  }
  if (init.audio) {
    traks.push(audioTrak(init.audio));
    trexes.push(trex(AUDIO_TRACK_ID));
  }
  const mvhd = fullBox(
    'mvhd',
    0,
    0,
    u32(0, 0, 1000, 0), // creation, modification, timescale, duration
    u32(0x00010000),
    u16(0x0100),
    zeros(10),
    UNITY_MATRIX,
    zeros(24),
    u32(AUDIO_TRACK_ID + 1),
  );
  const moov = box('moov', mvhd, ...traks, box('mvex', ...trexes));
  return Buffer.concat([ftyp, moov]);
}

/** The MSE type string, e.g. `video/mp4; codecs="avc1.64001f,mp4a.40.2"`. */
export function mimeType(init: StreamInit): string {
  const codecs = [init.video?.codecString, init.audio?.codecString].filter(Boolean).join(',');
  return `${init.video ? 'video' : 'audio'}/mp4; codecs="${codecs}"`;
}

function trex(trackId: number): Buffer {
  return fullBox('trex', 0, 0, u32(trackId, 1, 0, 0, 0));
}

function tkhd(trackId: number, volume: number, width: number, height: number): Buffer {
  return fullBox('tkhd', 0, 3, u32(0, 0, trackId, 0, 0), zeros(8), u16(0, 0, volume, 0), UNITY_MATRIX, u32(width << 16, height << 16));
}

function mdhd(timescale: number): Buffer {
  return fullBox('mdhd', 0, 0, u32(0, 0, timescale, 0), u16(0x55c4, 0)); // language "und"
}

function hdlr(type: string, name: string): Buffer {
  return fullBox('hdlr', 0, 0, u32(0), Buffer.from(type, 'latin1'), zeros(12), Buffer.from(name + '\0', 'latin1'));
}

function emptyTables(sampleEntry: Buffer): Buffer {
  return box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), sampleEntry),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0, 0)),
    fullBox('stco', 0, 0, u32(0)),
  );
}

const dinf = () => box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));

/** The sample entry and its configuration box for each video codec: `avc1`/`avcC`, `hvc1`/`hvcC`, `av01`/`av1C`. */
const VIDEO_ENTRIES: Record<VideoConfig['codec'], [entry: string, config: string]> = {
  h264: ['avc1', 'avcC'],
  hevc: ['hvc1', 'hvcC'],
  av1: ['av01', 'av1C'],
};

function videoTrak(video: VideoConfig): Buffer {
  const [entry, configBox] = VIDEO_ENTRIES[video.codec];
  const sampleEntry = box(
    entry,
    zeros(6),
    u16(1), // reserved, data_reference_index
    zeros(16),
    u16(video.width, video.height),
    u32(0x00480000, 0x00480000, 0),
    u16(1),
    zeros(32),
    u16(0x0018, 0xffff),
    box(configBox, video.config),
  );
  return box(
    'trak',
    tkhd(VIDEO_TRACK_ID, 0, video.width, video.height),
    box('mdia', mdhd(VIDEO_TIMESCALE), hdlr('vide', 'VideoHandler'), box('minf', fullBox('vmhd', 0, 1, zeros(8)), dinf(), emptyTables(sampleEntry))),
  );
}

/** Opus in ISO BMFF (opus-codec.org "Encapsulation of Opus in ISO Base Media File Format"): an `Opus` entry with `dOps`. */
function opusEntry(audio: AudioConfig): Buffer {
  // From the OpusHead when the source had one (Ogg, 19+ bytes); WebRTC has none: no pre-skip.
  const head = audio.config.length >= 19 && audio.config.toString('latin1', 0, 8) === 'OpusHead' ? audio.config : undefined;
  const preSkip = head ? head.readUInt16LE(10) : 0;
  const inputRate = head ? head.readUInt32LE(12) : 48000;
  const dOps = box('dOps', u8(0, audio.channels), u16(preSkip), u32(inputRate), u16(0), u8(0));
  return box('Opus', zeros(6), u16(1), zeros(8), u16(audio.channels, 16, 0, 0), u32(48000 * 65536), dOps);
}

function audioTrak(audio: AudioConfig): Buffer {
  if (audio.codec === 'opus') {
    return box(
      'trak',
      tkhd(AUDIO_TRACK_ID, 0x0100, 0, 0),
      box('mdia', mdhd(48000), hdlr('soun', 'SoundHandler'), box('minf', fullBox('smhd', 0, 0, zeros(4)), dinf(), emptyTables(opusEntry(audio)))),
    );
  }
  const esds = fullBox(
    'esds',
    0,
    0,
    descriptor(
      0x03,
      u16(AUDIO_TRACK_ID),
      u8(0),
      descriptor(0x04, u8(0x40, 0x15), zeros(3), u32(0, 0), descriptor(0x05, audio.config)),
      descriptor(0x06, u8(0x02)),
    ),
  );
  const rate = audio.sampleRate < 65536 ? audio.sampleRate : 0;
  const mp4a = box('mp4a', zeros(6), u16(1), zeros(8), u16(audio.channels, 16, 0, 0), u32(rate * 65536), esds);
  return box(
    'trak',
    tkhd(AUDIO_TRACK_ID, 0x0100, 0, 0),
    box('mdia', mdhd(audio.sampleRate), hdlr('soun', 'SoundHandler'), box('minf', fullBox('smhd', 0, 0, zeros(4)), dinf(), emptyTables(mp4a))),
  );
}
