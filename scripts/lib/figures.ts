import { readFileSync } from 'node:fs';

/** `n` rounded to `d` decimals, for figures in tables. */
export const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

/** The `q` quantile of an ascending array (NaN when empty). */
export const quantile = (sorted: number[], q: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** A process's CPU seconds so far (user + system, and system alone) and resident memory, from /proc. */
export function processStat(pid: number): { cpu: number; sys: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime in clock ticks of 10 ms; rss in 4 KiB pages.
  return { cpu: (Number(stat[11]) + Number(stat[12])) / 100, sys: Number(stat[12]) / 100, rssMb: (Number(stat[21]) * 4096) / 2 ** 20 };
}
