import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** `n` rounded to `d` decimals, for figures in tables. */
export const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

/** The `q` quantile of an ascending array (NaN when empty). */
export const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);

/** A process's CPU seconds so far (user + system, and system alone) and resident memory, from /proc. */
export function processStat(pid: number): { cpu: number; sys: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime in clock ticks of 10 ms; rss in 4 KiB pages.
  return { cpu: (Number(stat[11]) + Number(stat[12])) / 100, sys: Number(stat[12]) / 100, rssMb: (Number(stat[21]) * 4096) / 2 ** 20 };
}

/** A process and its children (mediasoup workers): CPU seconds and RSS summed. */
export function processTreeStat(pid: number): { cpu: number; sys: number; rssMb: number } {
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children
  }
  return [pid, ...children].map(processStat).reduce((a, b) => ({ cpu: a.cpu + b.cpu, sys: a.sys + b.sys, rssMb: a.rssMb + b.rssMb }));
}

/** Busy and total jiffies of the whole machine so far, from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** The machine's CPU use between two readings, in percent of all cores. */
export const machinePercent = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
  round(((b.busy - a.busy) / (b.total - a.total)) * 100);
