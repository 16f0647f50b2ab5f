/**
 * The one frame type that travels between the pipeline's stages:
 * ingest -> (transcode) -> bus -> edge -> viewer.
 *
 * Timestamps are in 90 kHz ticks (the MPEG clock): exact for RTMP milliseconds,
 * for AAC frames of 1024 samples at 48 kHz (1920 ticks) and for RTP video.
 */
export const TICKS_PER_SECOND = 90_000;
export const TICKS_PER_MS = 90;

export type Track = 'video' | 'audio';
/** H.264 everywhere; HEVC and AV1 from Enhanced RTMP publishers (OBS 30+). */
export type VideoCodec = 'h264' | 'hevc' | 'av1';
export type AudioCodec = 'aac' | 'opus';
export type Codec = VideoCodec | AudioCodec;

export interface VideoConfig {
  codec: VideoCodec;
  /**
   * The decoder configuration record, as (Enhanced) FLV carries it and MP4 writes it:
   * AVCDecoderConfigurationRecord (`avcC`), HEVCDecoderConfigurationRecord (`hvcC`)
   * or AV1CodecConfigurationRecord (`av1C`).
   */
  config: Buffer;
  /** RFC 6381 codec string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0` or `av01.0.04M.08`, taken from the configuration. */
  codecString: string;
  width: number;
  height: number;
  /**
   * False when the encoder is known to make no B-frames (the ladder's x264
   * zerolatency, a WebRTC sender): WebRTC can play it. Unset: they may come (RTMP).
   */
  bFrames?: boolean;
}

export interface AudioConfig {
  codec: AudioCodec;
  /** AudioSpecificConfig for AAC; OpusHead-style parameters for Opus (empty for now). */
  config: Buffer;
  /** e.g. `mp4a.40.2` or `opus`. */
  codecString: string;
  sampleRate: number;
  channels: number;
}

/** What a decoder needs before the first keyframe: the tracks and their configuration. */
export interface StreamInit {
  video?: VideoConfig;
  audio?: AudioConfig;
  /**
   * Opus beside an AAC `audio`: a rendition made for WebRTC carries both, and its
   * Opus frames travel on a subject of their own. MSE viewers take the AAC.
   */
  opus?: AudioConfig;
  /** The publisher's own description (FLV onMetaData): encoder, frame rate, bitrate... */
  metadata: Record<string, string | number | boolean>;
}

export interface Frame {
  track: Track;
  codec: Codec;
  /** Decode time, 90 kHz ticks, from the publisher's clock. */
  dts: number;
  /** Composition offset (pts - dts), 90 kHz ticks; positive with B-frames, may be negative. */
  cto: number;
  /** A random access point: an IDR picture for video; every audio frame is one. */
  keyframe: boolean;
  /** H.264 and HEVC: length-prefixed NAL units. AV1: one temporal unit of OBUs. AAC: one raw access unit. */
  payload: Buffer;
  /** Wall-clock time (ms since the epoch, fractional) at which the origin received the frame. */
  receivedAt: number;
  /** The stream's track configuration in force for this frame (a shared reference, not a copy). */
  init: StreamInit;
}

/**
 * A frame a decoder can start at: a video keyframe or, in a stream without video
 * (audio only), any frame of its main audio codec. The bus carries the init on these,
 * late viewers start at the newest one, and after a gap playback resumes at the next.
 * An audio frame of a stream whose metadata announces video is not one while the
 * video's configuration has not come yet: the stream is not audio-only.
 */
export function isRandomAccess(frame: Frame): boolean {
  if (frame.track === 'video') return frame.keyframe;
  const { init } = frame;
  return init.video === undefined && frame.codec === init.audio?.codec && !announcesVideo(init.metadata);
}

/** FLV metadata that says a video track comes (`videocodecid`, or a picture size). */
function announcesVideo(metadata: StreamInit['metadata']): boolean {
  const { videocodecid, width } = metadata;
  return (videocodecid !== undefined && videocodecid !== 0 && videocodecid !== '') || (typeof width === 'number' && width > 0);
}
