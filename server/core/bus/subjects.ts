import { RelayError } from '../errors.ts';
import { assertStreamName, isRenditionName } from '../media/stream-name.ts';

/**
 * Subject layout: `<prefix>.<stream>.<rendition>.<kind>`.
 *
 * The kind is a token of its own so that a late consumer can find the last
 * keyframe with a direct get on `...k` and start from its sequence (nats-server
 * 2.9 has no multi-filter consumers).
 */
export const SubjectKind = {
  /** A random access point: a video keyframe, or a frame of an audio-only stream. It carries the stream's init. */
  KEYFRAME: 'k',
  /** A video frame that is not a keyframe. */
  DELTA: 'd',
  /** An audio frame (the init's `audio` codec) of a stream with video; in an audio-only stream each one is a random access point (`KEYFRAME`). */
  AUDIO: 'a',
  /** An Opus frame beside AAC audio (the init's `opus`), for WebRTC viewers. */
  OPUS: 'o',
  /** The continuation of a frame split because it exceeded max_payload. */
  PART: 'p',
  /** The publisher has left: the stream ended. */
  END: 'e',
} as const;
export type SubjectKind = (typeof SubjectKind)[keyof typeof SubjectKind];

export const SOURCE_RENDITION = 'source';

export class StreamSubjects {
  readonly base: string;
  /** Every message of this rendition: the consumer's filter. */
  readonly all: string;
  readonly keyframe: string;
  readonly delta: string;
  readonly audio: string;
  readonly opus: string;
  readonly part: string;
  readonly end: string;

  constructor(prefix: string, stream: string, rendition: string = SOURCE_RENDITION) {
    assertStreamName(stream);
    if (!isRenditionName(rendition)) throw new RelayError('STREAM_NAME_INVALID', `rendition ${JSON.stringify(rendition)}`);
    this.base = `${prefix}.${stream}.${rendition}`;
    this.all = `${this.base}.>`;
    this.keyframe = `${this.base}.${SubjectKind.KEYFRAME}`;
    this.delta = `${this.base}.${SubjectKind.DELTA}`;
    this.audio = `${this.base}.${SubjectKind.AUDIO}`;
    this.opus = `${this.base}.${SubjectKind.OPUS}`;
    this.part = `${this.base}.${SubjectKind.PART}`;
    this.end = `${this.base}.${SubjectKind.END}`;
  }
}
