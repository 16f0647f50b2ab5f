/**
 * Many RTMP publishers in one process: each stream key gets its own connection that
 * replays an FLV file (made by ffmpeg, OBS-like) in real time, looped, as ffmpeg
 * `-re -stream_loop -1 -c copy` would send it. 100 ffmpeg processes cost 0.85% of a
 * core each here, most of these 2 cores at 100 streams; this costs a fraction of that,
 * which leaves the machine to what is measured.
 *
 *   node --import tsx scripts/lib/rtmp-replay.ts <file.flv> <rtmp://host:port/app> <key>[,<key>...]
 *
 * stdout, one JSON line per second: connections open and closed, bytes sent, CPU seconds.
 */
import { readFileSync } from 'node:fs';
import { readFlvTags } from '../../test/helpers/flv-file.ts';
import { ReplayPublishers } from './replay-publishers.ts';

const [file, base, keyList] = process.argv.slice(2) as [string, string, string];
const publishers = new ReplayPublishers(readFlvTags(readFileSync(file)), new URL(base));
// Streams spread over a second, as independent encoders would be.
for (const key of keyList.split(',')) publishers.add(key, 1000);

setInterval(() => {
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ ...publishers.totals, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
}, 1000);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
