import dgram from 'node:dgram';

/**
 * A loopback UDP relay that loses packets: a client sends to `port`, the relay forwards to
 * the target and back, dropping each packet, either way, with probability `loss` (a seeded
 * generator, so a run can be repeated). What an SRT caller meets on a lossy link.
 */
export interface LossyUdp {
  readonly port: number;
  readonly stats: { forwarded: number; dropped: number };
  close(): Promise<void>;
}

export async function startLossyUdp(target: { host: string; port: number }, loss: number, seed = 1): Promise<LossyUdp> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  let state = seed >>> 0 || 1;
  const random = () => {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x100000000;
  };
  const stats = { forwarded: 0, dropped: 0 };
  let client: { address: string; port: number } | undefined;
  const pass = () => {
    if (random() < loss) {
      stats.dropped++;
      return false;
    }
    stats.forwarded++;
    return true;
  };
  front.on('message', (msg, from) => {
    client = { address: from.address, port: from.port };
    if (pass()) back.send(msg, target.port, target.host);
  });
  back.on('message', (msg) => {
    if (client && pass()) front.send(msg, client.port, client.address);
  });
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', () => r()));
  return {
    port: front.address().port,
    stats,
    close: async () => {
      await new Promise<void>((r) => front.close(() => r()));
      await new Promise<void>((r) => back.close(() => r()));
    },
  };
}
