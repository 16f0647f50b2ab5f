/** Just enough ISO BMFF reading for tests to check what the edge sends. */
export interface Box {
  type: string;
  start: number;
  end: number;
  body: Buffer;
}

export function boxes(buf: Buffer, start = 0, end = buf.length): Box[] {
  const out: Box[] = [];
  let p = start;
  while (p + 8 <= end) {
    const size = buf.readUInt32BE(p);
    if (size < 8 || p + size > end) throw new Error(`bad box size ${size} at ${p}`);
    out.push({ type: buf.toString('latin1', p + 4, p + 8), start: p, end: p + size, body: buf.subarray(p + 8, p + size) });
    p += size;
  }
  return out;
}

export interface TrackRun {
  trackId: number;
  baseDecodeTime: number;
  samples: number;
  firstSampleFlags?: number;
}

export interface FragmentInfo {
  sequence: number;
  tracks: TrackRun[];
  prftWallMs?: number;
}

export function readFragment(buf: Buffer): FragmentInfo {
  const top = boxes(buf);
  const moof = top.find((b) => b.type === 'moof');
  if (!moof) throw new Error(`no moof in ${top.map((b) => b.type).join(',')}`);
  const prft = top.find((b) => b.type === 'prft');
  const inner = boxes(moof.body);
  const mfhd = inner.find((b) => b.type === 'mfhd')!;
  const tracks = inner
    .filter((b) => b.type === 'traf')
    .map((traf) => {
      const parts = boxes(traf.body);
      const tfhd = parts.find((b) => b.type === 'tfhd')!;
      const tfdt = parts.find((b) => b.type === 'tfdt')!;
      const trun = parts.find((b) => b.type === 'trun')!;
      const flags = trun.body.readUInt32BE(0) & 0xffffff;
      const run: TrackRun = {
        trackId: tfhd.body.readUInt32BE(4),
        baseDecodeTime: tfdt.body[0] === 1 ? tfdt.body.readUInt32BE(4) * 2 ** 32 + tfdt.body.readUInt32BE(8) : tfdt.body.readUInt32BE(4),
        samples: trun.body.readUInt32BE(4),
      };
      if (flags & 0x400) {
        const p = 8 + (flags & 1 ? 4 : 0) + (flags & 4 ? 4 : 0) + (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0);
        run.firstSampleFlags = trun.body.readUInt32BE(p);
      }
      return run;
    });
  const info: FragmentInfo = { sequence: mfhd.body.readUInt32BE(4), tracks };
  if (prft) info.prftWallMs = (prft.body.readUInt32BE(8) - 2_208_988_800) * 1000 + (prft.body.readUInt32BE(12) / 2 ** 32) * 1000;
  return info;
}

export const isSyncFlags = (flags: number | undefined) => flags !== undefined && (flags & 0x00010000) === 0;
