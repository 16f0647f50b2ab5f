import { RelayError } from '../../errors.ts';
import type { AudioConfig, Frame, StreamInit, VideoConfig } from '../frame.ts';
import { TICKS_PER_SECOND } from '../frame.ts';
import { OPUS_SAMPLE_RATE, opusConfig } from '../opus.ts';
import { AdtsReader, H264AnnexBReader, HevcAnnexBReader, readOpusPes } from './elementary.ts';

export const TS_PACKET_SIZE = 188;
const SYNC = 0x47;
const PID_PAT = 0;
const TS_WRAP = 2 ** 33;

/** What the relay reads out of an MPEG-TS program: its first video and first audio stream. */
type EsKind = 'h264' | 'hevc' | 'aac' | 'opus';

/** Stream types (ISO/IEC 13818-1 table 2-34, and registrations) the relay refuses by name rather than ignore. */
const REFUSED_TYPES: Record<number, string> = {
  0x01: 'MPEG-1 video',
  0x02: 'MPEG-2 video',
  0x03: 'MPEG-1 audio (MP2/MP3)',
  0x04: 'MPEG-2 audio (MP2/MP3)',
  0x10: 'MPEG-4 part 2 video',
  0x11: 'AAC in LATM',
  0x33: 'VVC',
  0x81: 'AC-3',
  0x87: 'E-AC-3',
};

interface EsTrack {
  pid: number;
  kind: EsKind;
  /** Last continuity counter seen; -1 before the first packet. */
  cc: number;
  /** The PES being gathered: its TS payloads, in order. */
  chunks: Buffer[];
  bytes: number;
  /** Bytes the PES holds in all (6 + PES_packet_length); 0: unbounded (video), -1: not read yet. */
  expected: number;
  /** Channels of an Opus stream (its PMT descriptor). */
  channels: number;
  /** Unbounded PES end at a stuffed packet (see `packet`); off after one proved otherwise. */
  earlyEnd: boolean;
  /** The last PES was read at a stuffed packet: more of it would prove the guess wrong. */
  endedEarly: boolean;
}

export interface TsDemuxerStats {
  packets: number;
  /** Bytes skipped to find a sync byte again. */
  resyncBytes: number;
  /** Continuity counter gaps (a packet lost before it reached the demuxer). */
  ccErrors: number;
  /** Packets the sender flagged as errored. */
  errorPackets: number;
  /** PES packets given up (a gap inside, unreadable, too large, or no timestamp). */
  pesDropped: number;
  /** Video pictures dropped while waiting for a keyframe (at start and after a gap). */
  videoDropped: number;
  videoFrames: number;
  audioFrames: number;
  /** Unbounded PES read at a stuffed packet that turned out to go on (early ends are off after the first). */
  earlyEndMisses: number;
}

/** A bound on one PES: a larger one means a broken stream. */
const MAX_PES_BYTES = 8 * 1024 * 1024;
/** Video pictures held while a declared audio stream has not shown its configuration (about 4 s at 60 fps). */
const MAX_PENDING_VIDEO = 240;

/**
 * MPEG-TS -> the relay's frames. Pure: bytes in (any chunking), frames out.
 *
 * Reads the PAT, then its first program's PMT, and of that program the first
 * H.264 or HEVC video stream and the first AAC (ADTS) or Opus audio stream. PES packets
 * are gathered per PID and read when complete: at their PES_packet_length, or
 * for unbounded video PES at the packet a muxer stuffed to end it (falling back to
 * the next PES's start, a frame interval later, for a stream where that guess
 * proves wrong once). Timestamps are the PES's
 * PTS and DTS, 90 kHz as the relay's frames are, unwrapped past 2^33: exact,
 * B-frames kept (cto = PTS - DTS). A continuity gap drops the PES it hits and
 * video resumes at its next keyframe. Streams it cannot carry (MPEG-2 video,
 * MP3, AC-3, VVC...) are refused with CODEC_UNSUPPORTED.
 *
 * `push` returns an array reused by the next call: read it before pushing again.
 */
export class TsDemuxer {
  readonly stats: TsDemuxerStats = {
    packets: 0,
    resyncBytes: 0,
    ccErrors: 0,
    errorPackets: 0,
    pesDropped: 0,
    videoDropped: 0,
    videoFrames: 0,
    audioFrames: 0,
    earlyEndMisses: 0,
  };
  private readonly out: Frame[] = [];
  private remainder: Buffer | undefined;
  private pmtPid = -1;
  private pmtVersion = -1;
  private readonly psi = new Map<number, { chunks: Buffer[]; bytes: number }>();
  private video: EsTrack | undefined;
  private audio: EsTrack | undefined;
  private readonly h264 = new H264AnnexBReader();
  private readonly hevc = new HevcAnnexBReader();
  private readonly adts = new AdtsReader();
  private opus: AudioConfig | undefined;
  private lastTs: number | undefined;
  private init: StreamInit | undefined;
  private initVideo: VideoConfig | undefined;
  private initAudio: AudioConfig | undefined;
  private needKeyframe = true;
  /** Video frames held until the declared audio stream's configuration is known. */
  private pending: Frame[] = [];

  constructor(private readonly metadata: StreamInit['metadata'] = {}) {}

  /** Tracks the program carries, once its PMT has been read. */
  get tracks(): { video?: EsKind; audio?: EsKind } {
    return { video: this.video?.kind, audio: this.audio?.kind };
  }

  /** Reads `data`; the frames it completed, in the order they completed. */
  push(data: Buffer, receivedAt: number): Frame[] {
    this.out.length = 0;
    let buf = data;
    if (this.remainder) {
      buf = Buffer.concat([this.remainder, data]);
      this.remainder = undefined;
    }
    let p = 0;
    while (p + TS_PACKET_SIZE <= buf.length) {
      if (buf[p] !== SYNC) {
        // Lost sync: the next 0x47 that a packet later has another (a lone one is likely payload).
        let next = buf.indexOf(SYNC, p + 1);
        while (next >= 0 && next + TS_PACKET_SIZE < buf.length && buf[next + TS_PACKET_SIZE] !== SYNC) next = buf.indexOf(SYNC, next + 1);
        const to = next < 0 ? buf.length : next;
        this.stats.resyncBytes += to - p;
        p = to;
        continue;
      }
      this.packet(buf.subarray(p, p + TS_PACKET_SIZE), receivedAt);
      p += TS_PACKET_SIZE;
    }
    if (p < buf.length) this.remainder = Buffer.from(buf.subarray(p));
    return this.out;
  }

  /**
   * Data was lost before it reached the demuxer (an SRT packet dropped too late):
   * every PES in progress is given up and video resumes at its next keyframe.
   */
  lost(): void {
    this.remainder = undefined;
    for (const track of [this.video, this.audio]) if (track) this.breakPes(track);
  }

  /** The end of the stream: the PES still open (the last picture, of unbounded length) is read; one cut short is dropped. */
  end(receivedAt: number): Frame[] {
    this.out.length = 0;
    for (const track of [this.video, this.audio]) {
      if (!track) continue;
      if (track.expected !== 0) this.breakPes(track);
      else this.finishPes(track, receivedAt);
    }
    return this.out;
  }

  private packet(b: Buffer, at: number): void {
    this.stats.packets++;
    const pid = ((b[1]! & 0x1f) << 8) | b[2]!;
    if (b[1]! & 0x80) {
      this.stats.errorPackets++;
      const track = this.trackOf(pid);
      if (track) this.breakPes(track);
      return;
    }
    const start = (b[1]! & 0x40) !== 0;
    const control = (b[3]! >> 4) & 3;
    const cc = b[3]! & 0x0f;
    let p = 4;
    let discontinuity = false;
    let stuffed = false;
    if (control & 2) {
      const length = b[4]!;
      if (length > 0) discontinuity = (b[5]! & 0x80) !== 0;
      p = 5 + length;
      stuffed = length === 0 || stuffingAt(b, length) < p;
    }
    if (!(control & 1) || p >= TS_PACKET_SIZE) return; // no payload: the counter does not move
    const payload = b.subarray(p);
    if (pid === PID_PAT || pid === this.pmtPid) {
      this.section(pid, start, payload);
      return;
    }
    const track = this.trackOf(pid);
    if (!track) return;
    if (track.cc >= 0 && !discontinuity) {
      if (cc === track.cc) return; // a duplicate packet (allowed once)
      if (cc !== ((track.cc + 1) & 0x0f)) {
        this.stats.ccErrors++;
        this.breakPes(track);
      }
    }
    track.cc = cc;
    if (start) {
      this.finishPes(track, at);
      track.chunks.push(payload);
      track.bytes = payload.length;
      track.expected = -1;
      track.endedEarly = false;
    } else if (track.chunks.length > 0) {
      track.chunks.push(payload);
      track.bytes += payload.length;
    } else {
      if (track.endedEarly) {
        // A stuffed packet was not the end of its PES after all: that picture went out cut short.
        // Early ends are off for this stream from now on, and video waits for a keyframe.
        this.stats.earlyEndMisses++;
        track.earlyEnd = false;
        track.endedEarly = false;
        this.breakPes(track);
      }
      return; // the middle of a PES whose start was lost or not seen yet
    }
    if (track.expected < 0 && track.bytes >= 6) {
      const head = track.chunks.length === 1 ? track.chunks[0]! : Buffer.concat(track.chunks);
      const length = head.readUInt16BE(4);
      track.expected = length === 0 ? 0 : 6 + length;
    }
    if (track.bytes > MAX_PES_BYTES) this.breakPes(track);
    else if (track.expected > 0 && track.bytes >= track.expected) this.finishPes(track, at);
    else if (track.expected === 0 && stuffed && track.earlyEnd) {
      // An unbounded (video) PES ends where a muxer stuffs a packet: nothing but the last packet of a
      // PES needs stuffing. Reading it now rather than at the next PES's start saves a frame interval.
      this.finishPes(track, at);
      track.endedEarly = true;
    }
  }

  private trackOf(pid: number): EsTrack | undefined {
    return this.video?.pid === pid ? this.video : this.audio?.pid === pid ? this.audio : undefined;
  }

  /** Gives up the PES in progress (a gap in it); video then waits for a keyframe. */
  private breakPes(track: EsTrack): void {
    if (track.chunks.length > 0) this.stats.pesDropped++;
    track.chunks = [];
    track.bytes = 0;
    track.expected = -1;
    if (track === this.video) this.needKeyframe = true;
  }

  private finishPes(track: EsTrack, at: number): void {
    if (track.chunks.length === 0) return;
    const data = track.chunks.length === 1 ? track.chunks[0]! : Buffer.concat(track.chunks, track.bytes);
    track.chunks = [];
    track.bytes = 0;
    track.expected = -1;
    if (data.length < 9 || data[0] !== 0 || data[1] !== 0 || data[2] !== 1) {
      this.stats.pesDropped++;
      return;
    }
    const flags = data[7]!;
    const headerEnd = 9 + data[8]!;
    const hasPts = (flags & 0x80) !== 0;
    const hasDts = (flags & 0xc0) === 0xc0;
    if (!hasPts || headerEnd > data.length || (hasDts && data.length < 19) || data.length < 14) {
      this.stats.pesDropped++;
      return;
    }
    const rawPts = readTimestamp(data, 9);
    // PTS - DTS, across a wrap of either.
    let offset = hasDts ? rawPts - readTimestamp(data, 14) : 0;
    if (offset > TS_WRAP / 2) offset -= TS_WRAP;
    else if (offset < -TS_WRAP / 2) offset += TS_WRAP;
    const pts = this.unwrap(rawPts);
    const dts = pts - offset;
    const payload = data.subarray(headerEnd);
    if (track === this.video) this.videoPes(payload, pts, dts, at);
    else this.audioPes(track, payload, pts, at);
  }

  private videoPes(payload: Buffer, pts: number, dts: number, at: number): void {
    const hevc = this.video!.kind === 'hevc';
    const reader = hevc ? this.hevc : this.h264;
    const picture = reader.read(payload);
    if (!picture) return;
    if (this.needKeyframe) {
      if (!picture.keyframe) {
        this.stats.videoDropped++;
        return;
      }
      this.needKeyframe = false;
    }
    this.initVideo = reader.config;
    const init = this.currentInit();
    const frame: Frame = {
      track: 'video',
      codec: hevc ? 'hevc' : 'h264',
      dts,
      cto: pts - dts,
      keyframe: picture.keyframe,
      payload: picture.payload,
      receivedAt: at,
      init,
    };
    // A declared audio stream whose configuration is not known yet: its frames' init would come
    // after the video's. Hold the pictures (a few seconds at most) so that one init carries both.
    if (this.audio && !this.initAudio && this.pending.length < MAX_PENDING_VIDEO) {
      this.pending.push(frame);
      return;
    }
    this.flushPending();
    this.emit(frame);
  }

  private audioPes(track: EsTrack, payload: Buffer, pts: number, at: number): void {
    if (this.video && !this.initVideo) return; // a stream with video starts at its first keyframe
    if (track.kind === 'aac') {
      const frames = this.adts.read(payload);
      if (!this.adts.config) return;
      this.audioConfig(this.adts.config);
      const rate = this.adts.config.sampleRate;
      for (const f of frames) {
        const dts = pts + Math.round((f.index * 1024 * TICKS_PER_SECOND) / rate);
        this.emit({ track: 'audio', codec: 'aac', dts, cto: 0, keyframe: true, payload: f.payload, receivedAt: at, init: this.init! });
      }
    } else {
      const packets = readOpusPes(payload);
      this.opus ??= opusConfig(track.channels);
      this.audioConfig(this.opus);
      for (const packet of packets) {
        const dts = pts + Math.round((packet.offset * TICKS_PER_SECOND) / OPUS_SAMPLE_RATE);
        this.emit({ track: 'audio', codec: 'opus', dts, cto: 0, keyframe: true, payload: packet.payload, receivedAt: at, init: this.init! });
      }
    }
  }

  /** The audio configuration is known: the init gets it, and the pictures held for it go out first. */
  private audioConfig(config: AudioConfig): void {
    if (this.initAudio === config) return;
    this.initAudio = config;
    this.currentInit();
    for (const frame of this.pending) frame.init = this.init!;
    this.flushPending();
  }

  private flushPending(): void {
    if (this.pending.length === 0) return;
    const held = this.pending;
    this.pending = [];
    for (const frame of held) this.emit(frame);
  }

  private currentInit(): StreamInit {
    const init = this.init;
    if (init && init.video === this.initVideo && init.audio === this.initAudio) return init;
    this.init = { video: this.initVideo, audio: this.initAudio, metadata: this.metadata };
    return this.init;
  }

  private emit(frame: Frame): void {
    if (frame.track === 'video') this.stats.videoFrames++;
    else this.stats.audioFrames++;
    this.out.push(frame);
  }

  /** A 33-bit timestamp placed next to the last one read, whichever side of a wrap. */
  private unwrap(raw: number): number {
    const last = this.lastTs;
    const value = last === undefined ? raw : raw + Math.round((last - raw) / TS_WRAP) * TS_WRAP;
    this.lastTs = value;
    return value;
  }

  /** A PSI section (PAT or PMT), gathered across packets when it spans several. */
  private section(pid: number, start: boolean, payload: Buffer): void {
    let gathering = this.psi.get(pid);
    if (start) {
      const pointer = payload[0]!;
      if (1 + pointer >= payload.length) return;
      gathering = { chunks: [payload.subarray(1 + pointer)], bytes: payload.length - 1 - pointer };
      this.psi.set(pid, gathering);
    } else if (gathering) {
      gathering.chunks.push(payload);
      gathering.bytes += payload.length;
    } else {
      return;
    }
    const data = gathering.chunks.length === 1 ? gathering.chunks[0]! : Buffer.concat(gathering.chunks);
    if (data.length < 3) return;
    const length = 3 + (((data[1]! & 0x0f) << 8) | data[2]!);
    if (data.length < length) {
      if (gathering.bytes > 4096) this.psi.delete(pid);
      return;
    }
    this.psi.delete(pid);
    const table = data.subarray(0, length);
    if (length < 12 || crc32Mpeg(table) !== 0) return; // a corrupt table: the next copy will do
    if (pid === PID_PAT && table[0] === 0x00) this.pat(table);
    else if (pid === this.pmtPid && table[0] === 0x02) this.pmt(table);
  }

  private pat(table: Buffer): void {
    const end = table.length - 4;
    for (let p = 8; p + 4 <= end; p += 4) {
      const program = table.readUInt16BE(p);
      if (program === 0) continue; // the network PID
      const pid = table.readUInt16BE(p + 2) & 0x1fff;
      if (pid !== this.pmtPid) {
        this.pmtPid = pid;
        this.pmtVersion = -1;
      }
      return;
    }
  }

  private pmt(table: Buffer): void {
    const version = (table[5]! >> 1) & 0x1f;
    if (version === this.pmtVersion) return;
    this.pmtVersion = version;
    const end = table.length - 4;
    let p = 12 + (table.readUInt16BE(10) & 0x0fff);
    let video: EsTrack | undefined;
    let audio: EsTrack | undefined;
    const refused: string[] = [];
    while (p + 5 <= end) {
      const type = table[p]!;
      const pid = table.readUInt16BE(p + 1) & 0x1fff;
      const infoLength = table.readUInt16BE(p + 3) & 0x0fff;
      const descriptors = table.subarray(p + 5, Math.min(end, p + 5 + infoLength));
      p += 5 + infoLength;
      const kind = esKind(type, descriptors);
      if (kind === 'h264' || kind === 'hevc') video ??= this.track(pid, kind, descriptors);
      else if (kind === 'aac' || kind === 'opus') audio ??= this.track(pid, kind, descriptors);
      else if (REFUSED_TYPES[type]) refused.push(`${REFUSED_TYPES[type]} (stream type 0x${type.toString(16)})`);
    }
    if (refused.length > 0 || (!video && !audio)) {
      const carried = 'the relay takes H.264 or HEVC video with AAC (ADTS) or Opus audio over MPEG-TS';
      throw new RelayError('CODEC_UNSUPPORTED', refused.length > 0 ? `${refused.join(', ')}: ${carried}` : `no stream the relay can carry: ${carried}`);
    }
    this.video = video;
    this.audio = audio;
  }

  /** A track of the new PMT: the current one when the PID and kind did not change (its PES goes on). */
  private track(pid: number, kind: EsKind, descriptors: Buffer): EsTrack {
    const current = this.trackOf(pid);
    if (current?.kind === kind) return current;
    return {
      pid,
      kind,
      cc: -1,
      chunks: [],
      bytes: 0,
      expected: -1,
      channels: kind === 'opus' ? opusChannels(descriptors) : 0,
      earlyEnd: true,
      endedEarly: false,
    };
  }
}

/** What an elementary stream of the PMT is, from its stream type and descriptors. */
function esKind(type: number, descriptors: Buffer): EsKind | undefined {
  if (type === 0x1b) return 'h264';
  if (type === 0x24) return 'hevc';
  if (type === 0x0f) return 'aac';
  if (type === 0x06 && findDescriptor(descriptors, 0x05)?.toString('latin1', 0, 4) === 'Opus') return 'opus';
  return undefined;
}

function findDescriptor(descriptors: Buffer, tag: number): Buffer | undefined {
  for (let p = 0; p + 2 <= descriptors.length; p += 2 + descriptors[p + 1]!) {
    if (descriptors[p] === tag) return descriptors.subarray(p + 2, p + 2 + descriptors[p + 1]!);
  }
  return undefined;
}

/** An Opus stream's channels: its extension descriptor's channel_config_code (1-8 for mapping family 0/1), else stereo. */
function opusChannels(descriptors: Buffer): number {
  const ext = findDescriptor(descriptors, 0x7f);
  if (ext && ext.length >= 2 && ext[0] === 0x80 && ext[1]! >= 1 && ext[1]! <= 8) return ext[1]!;
  return 2;
}

/**
 * Where the stuffing bytes of a packet's adaptation field (of `length` bytes, at byte 4) begin:
 * after its flags and the optional fields they announce. At its end: no stuffing.
 */
function stuffingAt(b: Buffer, length: number): number {
  const end = 5 + length;
  const flags = b[5]!;
  let p = 6;
  if (flags & 0x10) p += 6; // PCR
  if (flags & 0x08) p += 6; // OPCR
  if (flags & 0x04) p += 1; // splice countdown
  if (flags & 0x02 && p < end) p += 1 + b[p]!; // private data
  if (flags & 0x01 && p < end) p += 1 + b[p]!; // extension
  return p < end && b[p] === 0xff ? p : end;
}

/** A PES timestamp: 33 bits in 5 bytes with marker bits. */
function readTimestamp(b: Buffer, p: number): number {
  return (b[p]! & 0x0e) * 2 ** 29 + b[p + 1]! * 2 ** 22 + (b[p + 2]! & 0xfe) * 2 ** 14 + b[p + 3]! * 2 ** 7 + (b[p + 4]! >> 1);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32/MPEG-2 of PSI sections: 0 over a whole section with its CRC. */
export function crc32Mpeg(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  return crc;
}
