import dgram from 'node:dgram';

/**
 * A loopback UDP relay that squeezes one direction like a slow access link: a WebRTC viewer sends
 * to it instead of the server (its answer's candidate rewritten), it forwards both ways, and what
 * the server sends the viewer leaves at `rate` bit/s, one packet at a time (no burst), through a bounded
 * queue (drop-tail, `queueMs` of the rate): real queueing delay, then real loss. No rate: a plain relay.
 */
export interface UdpShaper {
  readonly port: number;
  /** Where it forwards to (the server's UDP candidate). */
  target: { host: string; port: number } | undefined;
  /** Bits per second towards the viewer; undefined lifts the limit. */
  setRate(bitsPerSecond: number | undefined): void;
  readonly stats: { forwarded: number; dropped: number };
  close(): Promise<void>;
}

export async function startUdpShaper(queueMs = 200): Promise<UdpShaper> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  let rate: number | undefined;
  const queue: Buffer[] = [];
  let queued = 0;
  let tokens = 0;
  let last = performance.now();
  const stats = { forwarded: 0, dropped: 0 };
  const send = (msg: Buffer) => {
    if (!client) return;
    stats.forwarded++;
    front.send(msg, client.port, client.address);
  };
  const drain = () => {
    if (rate === undefined) return;
    const now = performance.now();
    // No burst: tokens never outgrow what the packet at the head of the queue needs, so that packets leave
    // spaced at the link's rate even when this timer fires late (a busy machine). With a burst allowance,
    // a late tick let a bandwidth probe's small packets through together, and the sender read them as a
    // link far faster than this one (measured in CI: a squeezed viewer climbed back to the top layer).
    tokens = Math.min(tokens + ((now - last) / 1000) * rate, (queue[0]?.length ?? 0) * 8);
    last = now;
    while (queue.length > 0 && tokens >= queue[0]!.length * 8) {
      const msg = queue.shift()!;
      queued -= msg.length;
      tokens -= msg.length * 8;
      send(msg);
    }
  };
  const timer = setInterval(drain, 2);
  front.on('message', (msg, from) => {
    client = { address: from.address, port: from.port };
    if (shaper.target) back.send(msg, shaper.target.port, shaper.target.host);
  });
  back.on('message', (msg) => {
    if (rate === undefined) return send(msg);
    if ((queued + msg.length) * 8 > (rate * queueMs) / 1000) {
      stats.dropped++;
      return;
    }
    queue.push(msg);
    queued += msg.length;
    drain();
  });
  const shaper: UdpShaper = {
    get port() {
      return front.address().port;
    },
    target: undefined,
    stats,
    setRate(bitsPerSecond) {
      rate = bitsPerSecond;
      if (rate === undefined) {
        for (const msg of queue.splice(0)) send(msg);
        queued = 0;
      }
      tokens = 0;
      last = performance.now();
    },
    close: async () => {
      clearInterval(timer);
      await Promise.all([new Promise<void>((r) => front.close(() => r())), new Promise<void>((r) => back.close(() => r()))]);
    },
  };
  await Promise.all([new Promise<void>((r) => front.bind(0, '127.0.0.1', r)), new Promise<void>((r) => back.bind(0, '127.0.0.1', r))]);
  return shaper;
}

/** A WHEP answer whose only candidate is the shaper (its UDP candidate's address and port replaced, TCP ones dropped). */
export function answerThrough(answer: string, shaperPort: number): { answer: string; target: { host: string; port: number } } {
  const udp = /^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host.*$/m.exec(answer);
  if (!udp) throw new Error('the answer has no UDP host candidate');
  const target = { host: udp[1]!, port: Number(udp[2]) };
  const rewritten = answer
    .split(/\r\n/)
    .filter((line) => !/^a=candidate:\S+ 1 tcp /.test(line))
    .map((line) => (line.startsWith('a=candidate:') ? line.replace(` ${target.host} ${target.port} `, ` 127.0.0.1 ${shaperPort} `) : line))
    .join('\r\n');
  return { answer: rewritten, target };
}
