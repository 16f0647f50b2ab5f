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
export type VideoCodec = 'h264';
export type AudioCodec = 'aac' | 'opus';
export type Codec = VideoCodec | AudioCodec;

export interface VideoConfig {
  codec: VideoCodec;
  /** AVCDecoderConfigurationRecord, as carried by FLV and written into `avcC`. */
  avcC: Buffer;
  /** RFC 6381 codec string, e.g. `avc1.64001f`, taken from the SPS in avcC. */
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
  /** H.264: AVCC, 4-byte length-prefixed NAL units. AAC: one raw access unit. */
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
