import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../server/core/log.ts';
import { AUDIO_TRACK_ID, mimeType, VIDEO_TIMESCALE, VIDEO_TRACK_ID } from '../server/core/media/mp4/init-segment.ts';
import type { Frame, StreamInit } from '../server/core/media/frame.ts';
import type { Position, RenditionFiles } from './rendition-recorder.ts';
import { initFile, mediaPlaylist, multivariantPlaylist, segmentFile, type VariantEntry } from '../server/core/recording/playlist.ts';
import { recordingId, recordingPaths, variantOf, type RecordingMeta, type RenditionState, type StoredSegment } from '../server/core/recording/model.ts';
import type { RecordingStore } from '../server/core/recording/store.ts';
import type { RecordedSegment } from './recording-track.ts';

/** How recordings are made: an MP4 at the end or not, the renditions' order (the first is the MP4's), who hears of the end. */
export interface RecordingOptions {
  mp4: boolean;
  order: readonly string[];
  finished: (meta: RecordingMeta) => void;
}

const json = (value: unknown) => JSON.stringify(value, null, 1);

/**
 * One recording: one publication of one stream, its renditions' segments and playlists under `<id>/` in the store,
 * and `recording.json`. Every file is written whole and renamed into place, the playlists after the segments they
 * name, so what is on storage plays at every moment (an EVENT playlist while live). At the end: VOD playlists, and
 * one MP4 remuxed by ffmpeg (`-c copy`, `+faststart`).
 */
export class Recording {
  private readonly states = new Map<string, RenditionState>();
  private readonly inits = new Map<string, StreamInit>();
  private finishing: Promise<void> | undefined;

  private constructor(
    readonly meta: RecordingMeta,
    private readonly store: RecordingStore,
    private readonly log: Logger,
    private readonly options: RecordingOptions,
  ) {}

  /** A recording in the store, as it was left. */
  static async load(store: RecordingStore, id: string, log: Logger, options: RecordingOptions): Promise<Recording | undefined> {
    const raw = await store.read(recordingPaths.meta(id));
    if (!raw) return undefined;
    const meta = JSON.parse(raw.toString()) as RecordingMeta;
    const recording = new Recording(meta, store, log.child({ recording: meta.id }), options);
    for (const r of meta.renditions) {
      const state = await store.read(recordingPaths.state(meta.id, r));
      if (state) recording.states.set(r, JSON.parse(state.toString()) as RenditionState);
    }
    return recording;
  }

  /** Once complete (the MP4 made, the summary written): what a recorder shutting down waits for. */
  get done(): Promise<void> {
    return this.finishing ?? Promise.resolve();
  }

  /** The recording of publication `token` of `stream`: found in the store (a recorder resuming), or begun. */
  static async open(store: RecordingStore, stream: string, token: number, first: Frame, log: Logger, options: RecordingOptions): Promise<Recording> {
    // This publication's recordings: one being made is resumed; one an operator stopped is not (a new one begins).
    const mine = new RegExp(`^${stream}-\\d{8}-\\d{6}-t${token}(-\\d+)?$`);
    const existing = (await store.list('')).filter((name) => mine.test(name));
    for (const id of existing) {
      const recording = await Recording.load(store, id, log, options);
      if (recording?.meta.status === 'recording') return recording;
    }
    const base = recordingId(stream, first.receivedAt, token);
    const meta: RecordingMeta = {
      id: existing.length === 0 ? base : `${base}-${existing.length + 1}`,
      stream,
      token,
      startedAt: new Date(first.receivedAt).toISOString(),
      status: 'recording',
      renditions: [],
      durationS: 0,
      bytes: 0,
      gaps: 0,
    };
    const recording = new Recording(meta, store, log.child({ recording: meta.id }), options);
    await recording.writeMeta();
    // Edges find a live stream's recording here, to rewind in it.
    await store.write(recordingPaths.live(stream), JSON.stringify({ id: meta.id }));
    log.info({ recording: meta.id }, 'recording started');
    return recording;
  }

  /** This rendition's files in the recording, from the frame it begins with. */
  async rendition(name: string, first: Frame): Promise<RenditionFiles> {
    let state = this.states.get(name);
    // A tape numbers from 0 (segments) and 1 (inits): a rendition resumed in this recording goes on after what it had.
    const indexBase = state?.segments.length ?? 0;
    const initBase = state?.initId ?? 0;
    const init = first.init;
    if (!state) {
      state = {
        token: this.meta.token,
        segments: [],
        initId: 0,
        resume: undefined,
        ended: false,
        codecs: [init.video?.codecString, init.audio?.codecString].filter(Boolean).join(','),
        width: init.video?.width,
        height: init.video?.height,
        mime: mimeType(init),
        timescales: { [VIDEO_TRACK_ID]: VIDEO_TIMESCALE, [AUDIO_TRACK_ID]: init.audio?.sampleRate ?? 48_000 },
      };
      this.states.set(name, state);
    }
    state.ended = false;
    this.inits.set(name, init);
    if (!this.meta.renditions.includes(name)) {
      this.meta.renditions.push(name);
      this.meta.renditions.sort((a, b) => this.rank(a) - this.rank(b));
      await this.writeMeta();
      await this.writeMultivariant();
    }
    const s = state;
    const dir = `${this.meta.id}/${name}`;
    return {
      init: async (id, data) => {
        await this.store.write(`${dir}/${initFile(initBase + id)}`, data);
        s.initId = initBase + id;
      },
      segment: async (segment: RecordedSegment<Position>) => {
        const index = indexBase + segment.index;
        await this.store.write(`${dir}/${segmentFile(index)}`, segment.chunks);
        const stored: StoredSegment = {
          index,
          initId: initBase + segment.initId,
          discontinuity: segment.discontinuity,
          duration: segment.duration,
          programDateTime: segment.programDateTime,
          bytes: segment.bytes,
          videoFrames: segment.videoFrames,
          audioFrames: segment.audioFrames,
        };
        // A segment written again (a recorder resumed before its state said so) replaces its entry.
        s.segments = s.segments.filter((x) => x.index < index);
        s.segments.push(stored);
        s.resume = segment.resume;
        await this.store.write(recordingPaths.state(this.meta.id, name), json(s));
        await this.store.write(`${dir}/index.m3u8`, mediaPlaylist(s.segments, false));
      },
      end: async () => {
        s.ended = true;
        s.resume = undefined;
        await this.store.write(recordingPaths.state(this.meta.id, name), json(s));
        await this.store.write(`${dir}/index.m3u8`, mediaPlaylist(s.segments, true));
        // The summary and the MP4 (ffmpeg: seconds for a long recording) go on while the recorder does.
        if ([...this.states.values()].every((x) => x.ended)) void this.finish();
      },
    };
  }

  /**
   * Ends what is left open: a recording a recorder abandoned (its stream's frames are gone from the bus, or a newer
   * publication is being recorded). Its playlists become VOD with what was stored.
   */
  async close(): Promise<void> {
    for (const [name, s] of this.states) {
      if (s.ended) continue;
      s.ended = true;
      s.resume = undefined;
      await this.store.write(recordingPaths.state(this.meta.id, name), json(s));
      await this.store.write(`${this.meta.id}/${name}/index.m3u8`, mediaPlaylist(s.segments, true));
    }
    await this.finish();
  }

  /** Every rendition has ended: the summary, the multivariant playlist with measured bandwidths, the MP4. */
  private finish(): Promise<void> {
    this.finishing ??= this.doFinish().catch((err: Error) =>
      this.log.error({ code: 'RECORDING_WRITE_FAILED', err: err.message }, 'cannot complete the recording'),
    );
    return this.finishing;
  }

  private async doFinish(): Promise<void> {
    const totals = this.totals();
    Object.assign(this.meta, totals);
    const main = this.meta.renditions[0];
    const lastSegment = main === undefined ? undefined : this.states.get(main)?.segments.at(-1);
    this.meta.endedAt = lastSegment ? new Date(lastSegment.programDateTime + lastSegment.duration * 1000).toISOString() : this.meta.startedAt;
    await this.writeMultivariant();
    if (this.options.mp4 && main !== undefined && (this.states.get(main)?.segments.length ?? 0) > 0) {
      const file = `${this.meta.id}.mp4`;
      try {
        await this.store.withLocalFolder(`${this.meta.id}/${main}`, async (folder) => {
          const tmp = join(tmpdir(), `relay-${this.meta.id}-${process.pid}.mp4`);
          try {
            await remuxToMp4(join(folder, 'index.m3u8'), tmp);
            await this.store.putFile(`${this.meta.id}/${file}`, tmp);
          } finally {
            await rm(tmp, { force: true });
          }
        });
        const bytes = (await this.store.stat(`${this.meta.id}/${file}`)) ?? 0;
        this.meta.mp4 = { file, bytes, rendition: main };
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'cannot make the MP4 of the recording (its HLS files stay)');
      }
    }
    this.meta.status = 'complete';
    await this.writeMeta();
    const live = await this.store.read(recordingPaths.live(this.meta.stream));
    if (live && (JSON.parse(live.toString()) as { id?: string }).id === this.meta.id) await this.store.remove(recordingPaths.live(this.meta.stream));
    this.log.info({ durationS: this.meta.durationS, bytes: this.meta.bytes, gaps: this.meta.gaps }, 'recording complete');
    this.options.finished(this.meta);
  }

  private totals(): Pick<RecordingMeta, 'durationS' | 'bytes' | 'gaps'> {
    let bytes = 0;
    let gaps = 0;
    for (const s of this.states.values()) {
      for (const seg of s.segments) {
        bytes += seg.bytes;
        if (seg.discontinuity) gaps++;
      }
    }
    const main = this.meta.renditions[0];
    const durationS = main === undefined ? 0 : (this.states.get(main)?.segments.reduce((sum, x) => sum + x.duration, 0) ?? 0);
    return { durationS: Math.round(durationS * 1000) / 1000, bytes, gaps };
  }

  private rank(rendition: string): number {
    const i = this.options.order.indexOf(rendition);
    return i < 0 ? this.options.order.length : i;
  }

  private async writeMeta(): Promise<void> {
    await this.store.write(recordingPaths.meta(this.meta.id), json(this.meta));
  }

  private async writeMultivariant(): Promise<void> {
    const variants: VariantEntry[] = [];
    for (const name of this.meta.renditions) {
      const s = this.states.get(name);
      if (!s) continue;
      const metadata = this.inits.get(name)?.metadata ?? {};
      const guess = ((Number(metadata.videodatarate) || 0) + (Number(metadata.audiodatarate) || 0)) * 1000 || 1_000_000;
      variants.push(variantOf(name, s, guess));
    }
    await this.store.write(`${this.meta.id}/index.m3u8`, multivariantPlaylist(variants));
  }
}

/** ffmpeg remuxes the rendition's HLS (fMP4 segments) into one MP4 with its index first: no re-encoding. */
function remuxToMp4(playlist: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', playlist, '-c', 'copy', '-movflags', '+faststart', '-f', 'mp4', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`));
      resolve();
    });
  });
}
