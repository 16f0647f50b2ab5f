/**
 * The machine's floor for the WebRTC fan-out, measured in the same run as the
 * edge: plain Node UDP sends of the same packet shape (per 2 Mbit/s viewer: a
 * 30 fps burst of 1,228-byte datagrams and a 20 ms Opus datagram, each on its own
 * connected socket, as the edge sends), with no SRTP and no RTP work at all, to
 * a sink process that drains them. What one core spends here per viewer is what
 * any Node.js WebRTC server spends before doing anything.
 *
 *   node --import tsx scripts/lib/udp-floor.ts <viewers> <seconds> <video kbit/s>
 *
 * Prints one JSON line: { viewers, cpuPercent, sysPercent, sent, received }.
 */
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { SrtpProtector, writeRtpHeader } from '../../server/core/media/rtp/srtp-protector.ts';

const [viewers, seconds, kbps] = process.argv.slice(2).map(Number) as [number, number, number];

if (process.argv[2] === 'sink') {
  // One receiving socket per viewer, drained, as the load generators' are.
  let received = 0;
  const ports = await Promise.all(
    Array.from(
      { length: Number(process.argv[3]) },
      () =>
        new Promise<number>((resolve) => {
          const sink = dgram.createSocket('udp4');
          sink.on('message', () => received++);
          sink.bind(0, '127.0.0.1', () => resolve(sink.address().port));
        }),
    ),
  );
  process.send!({ ports });
  process.on('message', () => process.send!({ received }));
} else {
  const child = fork(new URL(import.meta.url).pathname, ['sink', String(viewers)], { execArgv: ['--import', 'tsx'] });
  const ports = await new Promise<number[]>((resolve) => child.once('message', (m: { ports: number[] }) => resolve(m.ports)));
  const sockets = await Promise.all(
    ports.map(
      (port) =>
        new Promise<dgram.Socket>((resolve) => {
          const s = dgram.createSocket('udp4');
          s.bind(0, '127.0.0.1', () => s.connect(port, '127.0.0.1', () => resolve(s)));
        }),
    ),
  );
  const video = Buffer.alloc(12 + 1200 + 16, 1);
  const audio = Buffer.alloc(12 + 160 + 16, 2);
  const packetsPerFrame = Math.ceil((kbps * 1000) / 8 / 30 / 1200);
  let sent = 0;
  const srtp = process.env.SRTP
    ? sockets.map(() => new SrtpProtector({ profile: 'aead-aes-128-gcm', key: randomBytes(16), salt: randomBytes(12) }))
    : undefined;
  const payload = video.subarray(12, 1212);
  let seq = 0;
  const frameTimer = setInterval(() => {
    sockets.forEach((s, v) => {
      for (let i = 0; i < packetsPerFrame; i++) {
        s.send(
          srtp
            ? srtp[v]!.protect(writeRtpHeader(Buffer.allocUnsafe(12), 96, false, seq++, 0, 1), payload, 0)
            : [video.subarray(0, 12), payload, video.subarray(1212)],
        );
        sent++;
      }
    });
  }, 1000 / 30);
  const audioTimer = setInterval(() => {
    for (const s of sockets) {
      s.send(audio);
      sent++;
    }
  }, 20);
  await new Promise((r) => setTimeout(r, 1000));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const c = process.cpuUsage(c0);
  const dt = (performance.now() - t0) / 1000;
  clearInterval(frameTimer);
  clearInterval(audioTimer);
  child.send('report');
  const received = await new Promise<number>((resolve) => child.once('message', (m: { received: number }) => resolve(m.received)));
  child.kill();
  process.stdout.write(
    JSON.stringify({
      viewers,
      cpuPercent: Math.round(((c.user + c.system) / 1e4 / dt) * 10) / 10,
      sysPercent: Math.round((c.system / 1e4 / dt) * 10) / 10,
      sent,
      received,
    }) + '\n',
  );
  process.exit(0);
}
