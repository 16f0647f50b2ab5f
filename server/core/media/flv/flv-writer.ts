import { RelayError } from '../../errors.ts';
import { isRandomAccess, TICKS_PER_MS, type Frame, type StreamInit } from '../frame.ts';

const TAG_AUDIO = 8;
const TAG_VIDEO = 9;

/**
 * Writes frames as an FLV byte stream (what ffmpeg reads on its stdin, keeping
 * every timestamp and composition offset). Pure: frames in, bytes out.
 */
export class FlvWriter {
  private init: StreamInit | undefined;

  /** The FLV file header and the codec configuration tags for `init`. */
  start(init: StreamInit): Buffer {
    if (init.video && init.video.codec !== 'h264') throw new RelayError('CODEC_UNSUPPORTED', `FLV cannot carry ${init.video.codec}`);
    if (init.audio && init.audio.codec !== 'aac') throw new RelayError('CODEC_UNSUPPORTED', `FLV cannot carry ${init.audio.codec}`);
    this.init = init;
    const header = Buffer.from([0x46, 0x4c, 0x56, 0x01, (init.audio ? 4 : 0) | (init.video ? 1 : 0), 0, 0, 0, 9, 0, 0, 0, 0]);
    const parts: Buffer[] = [header];
    if (init.video) parts.push(tag(TAG_VIDEO, 0, Buffer.from([0x17, 0, 0, 0, 0]), init.video.config));
    if (init.audio) parts.push(tag(TAG_AUDIO, 0, Buffer.from([0xaf, 0]), init.audio.config));
    return Buffer.concat(parts);
  }

  /**
   * One frame as an FLV tag; a frame whose init changed is preceded by the new configuration. `shiftTicks` moves
   * its timestamp (what a reader's timeline starts from) without a copy of the frame.
   */
  frame(frame: Frame, shiftTicks = 0): Buffer {
    const ms = Math.max(0, Math.round((frame.dts + shiftTicks) / TICKS_PER_MS));
    let config: Buffer | undefined;
    if (frame.init !== this.init && isRandomAccess(frame)) {
      this.init = frame.init;
      if (frame.init.video) config = tag(TAG_VIDEO, ms, Buffer.from([0x17, 0, 0, 0, 0]), frame.init.video.config);
      if (frame.init.audio) config = Buffer.concat([config ?? Buffer.alloc(0), tag(TAG_AUDIO, ms, Buffer.from([0xaf, 0]), frame.init.audio.config)]);
    }
    let out: Buffer;
    if (frame.track === 'video') {
      const head = Buffer.alloc(5);
      head[0] = frame.keyframe ? 0x17 : 0x27;
      head[1] = 1;
      head.writeIntBE(Math.round(frame.cto / TICKS_PER_MS), 2, 3);
      out = tag(TAG_VIDEO, ms, head, frame.payload);
    } else {
      out = tag(TAG_AUDIO, ms, Buffer.from([0xaf, 1]), frame.payload);
    }
    return config ? Buffer.concat([config, out]) : out;
  }
}

function tag(type: number, ms: number, head: Buffer, body: Buffer): Buffer {
  const size = head.length + body.length;
  const out = Buffer.allocUnsafe(11 + size + 4);
  out[0] = type;
  out.writeUIntBE(size, 1, 3);
  out.writeUIntBE(ms & 0xffffff, 4, 3);
  out[7] = (ms >>> 24) & 0xff;
  out.writeUIntBE(0, 8, 3);
  head.copy(out, 11);
  body.copy(out, 11 + head.length);
  out.writeUInt32BE(11 + size, 11 + size);
  return out;
}
