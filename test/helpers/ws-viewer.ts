import WebSocket from 'ws';
import { readFragment, type FragmentInfo } from './mp4-read.ts';

export interface ViewerRecord {
  controls: { type: string; [k: string]: unknown }[];
  initSegments: number;
  /** For each init: how many fragments had arrived before it (the next fragment is its first). */
  initAt: number[];
  fragments: (FragmentInfo & { at: number; bytes: number })[];
  closed?: { code: number; reason: string };
}

/** A WebSocket viewer that records what the edge sends and parses each fragment. */
export function watch(url: string): { ws: WebSocket; record: ViewerRecord; opened: Promise<void>; close(): void } {
  const ws = new WebSocket(url);
  const record: ViewerRecord = { controls: [], initSegments: 0, initAt: [], fragments: [] };
  let expectInit = false;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const msg = JSON.parse(data.toString()) as ViewerRecord['controls'][number];
      record.controls.push(msg);
      if (msg.type === 'init') {
        expectInit = true;
        record.initAt.push(record.fragments.length);
      }
      return;
    }
    if (expectInit) {
      expectInit = false;
      record.initSegments++;
      return;
    }
    record.fragments.push({ ...readFragment(data), at: Date.now(), bytes: data.length });
  });
  ws.on('close', (code, reason) => {
    record.closed = { code, reason: reason.toString() };
  });
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, record, opened, close: () => ws.close() };
}

export const videoRuns = (r: ViewerRecord) => r.fragments.flatMap((f) => f.tracks.filter((t) => t.trackId === 1));

/** Pictures (track 1) and audio frames a viewer was sent, over every fragment so far. */
export function deliveredSamples(record: ViewerRecord): { video: number; audio: number } {
  let video = 0;
  let audio = 0;
  for (const f of record.fragments)
    for (const t of f.tracks) {
      if (t.trackId === 1) video += t.samples;
      else audio += t.samples;
    }
  return { video, audio };
}
