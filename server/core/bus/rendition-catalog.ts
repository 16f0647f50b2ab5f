import type { StreamInit } from '../media/frame.ts';
import { FrameDecoder } from './frame-codec.ts';
import { type NatsConnection, jetstreamManager, type JetStreamManager } from './nats.ts';
import type { BusLayout } from './shards.ts';
import { SubjectKind } from './subjects.ts';

export interface RenditionInfo {
  name: string;
  width?: number;
  height?: number;
  /** MSE codecs, e.g. `avc1.4d401f,mp4a.40.2`. */
  codecs: string;
  /** Video bitrate from the stream's own metadata, when it says (kbit/s). */
  videoKbps?: number;
  /** Audio bitrate from the metadata, when it says (kbit/s). */
  audioKbps?: number;
  /** Frames per second from the metadata, when it says. */
  frameRate?: number;
  /** Audio codecs carried, e.g. `["mp4a.40.2", "opus"]`: AAC for MSE, Opus for WebRTC. */
  audio: string[];
  /** Playable over WebRTC (the WHEP rendition): Opus audio with H.264 without B-frames, Opus alone (audio only), or video alone without B-frames. */
  webrtc: boolean;
  /** Its video can go over WebRTC (H.264 without B-frames): a simulcast layer of the stream's WebRTC video. */
  webrtcVideo: boolean;
  /** What it carries: both tracks, audio only or video only. */
  tracks: 'audio+video' | 'audio' | 'video';
}

/**
 * A stream's renditions, read from the bus itself: which renditions have a
 * keyframe in its frame stream (its shard), and each one's init from its last keyframe. No
 * registry to keep in sync. Answers are cached for a second; an empty one (no live
 * rendition) for a fifth of that, so a stream that has just gone live is not refused
 * for long by a node that asked a moment before.
 */
export class RenditionCatalog {
  private jsm: JetStreamManager | undefined;
  private readonly cache = new Map<string, { at: number; value: Promise<RenditionInfo[]>; empty: boolean }>();

  constructor(
    private readonly nc: NatsConnection,
    /** The bus layout a stream is published in (its region's, with several). */
    private readonly locate: (stream: string) => Promise<BusLayout>,
  ) {}

  renditions(stream: string): Promise<RenditionInfo[]> {
    const hit = this.cache.get(stream);
    if (hit && Date.now() - hit.at < (hit.empty ? 200 : 1000)) return hit.value;
    const value = this.read(stream);
    const entry = { at: Date.now(), value, empty: false };
    this.cache.set(stream, entry);
    void value.then((r) => (entry.empty = r.length === 0)).catch(() => undefined);
    if (this.cache.size > 1000) this.cache.delete(this.cache.keys().next().value!);
    value.catch(() => this.cache.delete(stream));
    return value;
  }

  private async read(stream: string): Promise<RenditionInfo[]> {
    this.jsm ??= await jetstreamManager(this.nc, { timeout: 2000 });
    const { jsStream, prefix } = (await this.locate(stream)).shardOf(stream);
    const info = await this.jsm.streams.info(jsStream, { subjects_filter: `${prefix}.${stream}.*.${SubjectKind.KEYFRAME}` });
    const names = Object.keys(info.state.subjects ?? {}).map((s) => s.split('.').at(-2)!);
    const out: RenditionInfo[] = [];
    for (const name of names) {
      const [key, end] = await Promise.all([
        this.jsm.direct.getMessage(jsStream, { last_by_subj: `${prefix}.${stream}.${name}.${SubjectKind.KEYFRAME}` }),
        this.jsm.direct.getMessage(jsStream, { last_by_subj: `${prefix}.${stream}.${name}.${SubjectKind.END}` }),
      ]);
      if (!key || (end && end.seq > key.seq)) continue; // ended: not a live rendition
      let init;
      try {
        const msg = new FrameDecoder().decode(key.data);
        if (msg.kind !== 'frame') continue;
        init = msg.frame.init;
      } catch {
        continue;
      }
      const rate = init.metadata.videodatarate;
      const audioRate = init.metadata.audiodatarate;
      out.push({
        name,
        width: init.video?.width,
        height: init.video?.height,
        codecs: [init.video?.codecString, init.audio?.codecString].filter(Boolean).join(','),
        videoKbps: typeof rate === 'number' && rate > 0 ? Math.round(rate) : undefined,
        audioKbps: typeof audioRate === 'number' && audioRate > 0 ? Math.round(audioRate) : undefined,
        frameRate: typeof init.metadata.framerate === 'number' && init.metadata.framerate > 0 ? init.metadata.framerate : undefined,
        audio: [init.audio?.codecString, init.opus?.codecString].filter((c): c is string => c !== undefined),
        webrtc: playableOverWebRtc(init),
        webrtcVideo: init.video?.codec === 'h264' && init.video.bFrames === false,
        tracks: init.video ? (init.audio ? 'audio+video' : 'video') : 'audio',
      });
    }
    // The source first, then by height, highest first (an audio-only rendition last).
    return out.sort((a, b) => (a.name === 'source' ? -1 : b.name === 'source' ? 1 : (b.height ?? 0) - (a.height ?? 0)));
  }
}

/** WebRTC (here) plays Opus, and H.264 without B-frames (a WHIP source's own rendition, or a ladder rung with Opus beside its AAC). */
function playableOverWebRtc(init: StreamInit): boolean {
  const opus = init.opus !== undefined || init.audio?.codec === 'opus';
  if (!init.video) return opus;
  if (init.video.codec !== 'h264') return false; // the WebRTC egress sends H.264
  if (!init.audio) return init.video.bFrames === false;
  return opus;
}
