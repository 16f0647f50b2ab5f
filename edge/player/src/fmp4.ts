// Reading the relay's fMP4 fragments in the browser: pure, no DOM (tested against
// the muxer's own output). Each fragment is `prft` + `moof` + `mdat`: the `prft`
// carries the ingest wall-clock time of its first sample's media time.

/** A fragment's producer reference time: its track, the ingest wall clock (ms since the epoch), the media time (ticks). */
export interface Prft {
  track: number;
  wall: number;
  ticks: number;
}

/** Unix epoch in NTP time (1900), s. */
const NTP_UNIX_OFFSET_S = 2208988800;

/** The first box, when it is a `prft` v1: size(4) 'prft'(4) version/flags(4) track(4) ntp(8) media_time(8). */
export function readPrft(data: ArrayBuffer): Prft | undefined {
  if (data.byteLength < 32) return undefined;
  const view = new DataView(data);
  if (view.getUint32(4) !== 0x70726674) return undefined;
  return {
    track: view.getUint32(12),
    wall: (view.getUint32(16) - NTP_UNIX_OFFSET_S) * 1000 + (view.getUint32(20) / 4294967296) * 1000,
    ticks: view.getUint32(24) * 4294967296 + view.getUint32(28),
  };
}

/** A fragment's presentation time in seconds, from its prft box (undefined without one). */
export function presentationTime(data: ArrayBuffer, timescales: Record<number, number>): number | undefined {
  const prft = readPrft(data);
  return prft && prft.ticks / (timescales[prft.track] || 90000);
}

/** Whether a fragment's first video sample (track 1) is a sync sample (trun sample flags, ISO/IEC 14496-12). */
export function startsWithKeyframe(data: ArrayBuffer): boolean {
  const view = new DataView(data);
  const boxes = (start: number, end: number, visit: (type: string, start: number, end: number) => void) => {
    for (let p = start; p + 8 <= end;) {
      const size = view.getUint32(p);
      if (size < 8 || p + size > end) return;
      visit(String.fromCharCode(view.getUint8(p + 4), view.getUint8(p + 5), view.getUint8(p + 6), view.getUint8(p + 7)), p + 8, p + size);
      p += size;
    }
  };
  let sync: boolean | undefined;
  boxes(0, data.byteLength, (type, start, end) => {
    if (type !== 'moof') return;
    boxes(start, end, (t, s, e) => {
      if (t !== 'traf') return;
      let track = 0;
      boxes(s, e, (bt, bs) => {
        if (bt === 'tfhd') track = view.getUint32(bs + 4);
        if (bt === 'trun' && track === 1 && sync === undefined) {
          const flags = view.getUint32(bs) & 0xffffff;
          let p = bs + 8 + (flags & 1 ? 4 : 0);
          if (flags & 4) return void (sync = (view.getUint32(p) & 0x10000) === 0);
          p += (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0);
          if (flags & 0x400) sync = (view.getUint32(p) & 0x10000) === 0;
        }
      });
    });
  });
  return sync === true;
}
