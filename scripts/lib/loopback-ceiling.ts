/**
 * The machine's limit for the fan-out table: loopback TCP throughput measured with
 * iperf3 (Debian's package), one stream and four, and the CPU each side used.
 */
import { execFileSync, spawn } from 'node:child_process';
import { freePort } from '../../test/helpers/ports.ts';
import { round } from './figures.ts';

export interface CeilingRow {
  streams: number;
  gbps: number;
  senderCpuPercent: number;
  receiverCpuPercent: number;
}

interface IperfEnd {
  sum_received: { bits_per_second: number };
  cpu_utilization_percent: { host_total: number; remote_total: number };
}

export async function loopbackCeiling(seconds = 5): Promise<CeilingRow[]> {
  const port = await freePort();
  const server = spawn('iperf3', ['-s', '-p', String(port), '-B', '127.0.0.1'], { stdio: 'ignore' });
  const rows: CeilingRow[] = [];
  try {
    for (const streams of [1, 4]) {
      let end: IperfEnd | undefined;
      for (let attempt = 0; !end; attempt++) {
        try {
          end = (
            JSON.parse(
              execFileSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], {
                encoding: 'utf8',
                stdio: ['ignore', 'pipe', 'ignore'],
              }),
            ) as { end: IperfEnd }
          ).end;
        } catch (err) {
          if (attempt >= 20) throw new Error(`iperf3 failed: ${(err as Error).message}`, { cause: err });
          await new Promise((r) => setTimeout(r, 100)); // the server is still starting
        }
      }
      rows.push({
        streams,
        gbps: round(end.sum_received.bits_per_second / 1e9, 2),
        senderCpuPercent: round(end.cpu_utilization_percent.host_total),
        receiverCpuPercent: round(end.cpu_utilization_percent.remote_total),
      });
    }
  } finally {
    server.kill('SIGKILL');
  }
  return rows;
}
