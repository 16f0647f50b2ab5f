import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { SOURCE_RENDITION } from '../bus/subjects.ts';
import type { FramePublisher, Publication } from '../bus/frame-publisher.ts';
import { FlvFrameReader } from '../ingest/flv-frame-reader.ts';
import { RtmpIngest, type PublishRequest, type PublishSink } from '../ingest/rtmp-ingest.ts';
import type { StreamKeys } from '../ingest/stream-keys.ts';

export interface LiveStream {
  stream: string;
  remote: string;
  since: number;
  token: number;
  frames: number;
}

/**
 * The origin role: accepts publishers, turns what they send into frames and
 * publishes every frame, in order, to JetStream.
 */
export class Origin {
  readonly rtmp: RtmpIngest;
  private readonly live = new Map<string, LiveStream>();
  private readonly log: Logger;

  constructor(
    private readonly config: RelayConfig,
    private readonly keys: StreamKeys,
    private readonly publisher: FramePublisher,
    log: Logger,
  ) {
    this.log = log.child({ module: 'origin' });
    this.rtmp = new RtmpIngest({ ...config.rtmp, log: log.child({ module: 'ingest.rtmp' }), onPublish: (req) => this.publish(req) });
  }

  async start(): Promise<void> {
    await this.rtmp.listen();
    this.log.info({ port: this.rtmp.port, app: this.config.rtmp.app }, 'RTMP ingest listening');
  }

  async stop(): Promise<void> {
    await this.rtmp.close();
    await this.publisher.idle();
  }

  liveStreams(): LiveStream[] {
    return [...this.live.values()];
  }

  private publish(req: PublishRequest): PublishSink {
    if (req.app !== this.config.rtmp.app) throw new RelayError('RTMP_APP_UNKNOWN', `use rtmp://<host>:${this.config.rtmp.port}/${this.config.rtmp.app}`);
    const stream = this.keys.streamFor(req.key);
    if (!stream) {
      this.log.warn({ code: 'STREAM_KEY_INVALID', remote: req.remote }, 'publisher refused: wrong stream key');
      throw new RelayError('STREAM_KEY_INVALID');
    }
    if (this.live.has(stream)) {
      this.log.warn({ code: 'STREAM_ALREADY_PUBLISHING', stream, remote: req.remote }, 'publisher refused: the stream is live');
      throw new RelayError('STREAM_ALREADY_PUBLISHING', `stream ${stream} is live`);
    }
    const entry: LiveStream = { stream, remote: req.remote, since: Date.now(), token: Date.now(), frames: 0 };
    this.live.set(stream, entry);
    const log = this.log.child({ stream });
    const publication: Publication = this.publisher.open(this.config.bus.subjectPrefix, stream, SOURCE_RENDITION, entry.token);
    const reader = new FlvFrameReader((notice) => {
      if (notice.type === 'unsupported') {
        log.warn({ code: 'CODEC_UNSUPPORTED', track: notice.track, codec: notice.codec }, 'track dropped: codec not supported (H.264 and AAC are)');
      } else {
        const { video, audio } = notice.init;
        log.info({ video: video && `${video.codecString} ${video.width}x${video.height}`, audio: audio && `${audio.codecString} ${audio.sampleRate} Hz ${audio.channels} ch` }, 'stream configuration');
      }
    });
    const resume = () => req.control.resume();
    log.info({ remote: req.remote }, 'publisher connected');
    return {
      tag: (type, ts, body, receivedAt) => {
        const frame = reader.push(type, ts, body, receivedAt);
        if (!frame) return;
        entry.frames++;
        if (!publication.push(frame)) {
          req.control.pause();
          this.publisher.once('drain', resume);
        }
      },
      closed: (reason) => {
        this.publisher.off('drain', resume);
        publication.end();
        this.live.delete(stream);
        log.info({ frames: entry.frames, seconds: Math.round((Date.now() - entry.since) / 1000), code: reason?.code }, 'publisher left');
      },
    };
  }
}
