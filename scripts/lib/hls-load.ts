/**
 * HLS load generator, one process of several: many HLS clients of one media playlist.
 *   ll       LL-HLS, as hls.js in low-latency mode: a blocking reload for the next part, then the part
 *   classic  HLS without the low-latency tags: a reload every half target duration, each new segment
 *
 *   node --import tsx scripts/lib/hls-load.ts <ll|classic> <media playlist URL>
 *
 * stdin, one JSON line per command: {"add": n} starts n more clients; {"mark": true}
 * starts a measuring window. stdout, one JSON line per second: clients, requests,
 * bytes and errors in total; since the mark, the fewest bytes any client received;
 * this process's CPU seconds.
 */
import { createInterface } from 'node:readline';
import { HlsClient, LlHlsClient } from '../../test/helpers/ll-hls-client.ts';

const kind = process.argv[2];
const url = process.argv[3]!;
if (kind !== 'll' && kind !== 'classic') throw new Error(`unknown client kind ${kind}`);

interface Client {
  stats: { playlists: number; bytes: number; errors: number; parts?: number; segments?: number };
  stop(): Promise<void>;
}
const clients: { client: Client; markBytes: number }[] = [];

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { add?: number; mark?: boolean };
  if (cmd.add) {
    for (let i = 0; i < cmd.add; i++) {
      // Spread over a second, so that the clients do not all ask at the same moment.
      setTimeout(() => clients.push({ client: kind === 'll' ? new LlHlsClient(url) : new HlsClient(url), markBytes: 0 }), Math.random() * 1000);
    }
  }
  if (cmd.mark) for (const c of clients) c.markBytes = c.client.stats.bytes;
});

setInterval(() => {
  const total = { clients: clients.length, playlists: 0, media: 0, bytes: 0, errors: 0, minWindowBytes: Infinity };
  for (const { client, markBytes } of clients) {
    const s = client.stats;
    total.playlists += s.playlists;
    total.media += (s.parts ?? 0) + (s.segments ?? 0);
    total.bytes += s.bytes;
    total.errors += s.errors;
    total.minWindowBytes = Math.min(total.minWindowBytes, s.bytes - markBytes);
  }
  const cpu = process.cpuUsage();
  process.stdout.write(
    JSON.stringify({ ...total, minWindowBytes: clients.length ? total.minWindowBytes : 0, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n',
  );
}, 1000);
