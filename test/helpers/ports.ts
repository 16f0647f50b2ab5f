import { readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';

/**
 * The kernel's ephemeral range: it hands these out to every outgoing connection and
 * every listener on port 0. A port picked there and bound a moment later by another
 * process can be taken in between, by any connection's local end: a 3-node NATS
 * cluster failed to start that way ("bind: address already in use" on a route port,
 * most likely taken by another node's outgoing route connection).
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49152, 65535];
}

const handedOut = new Set<number>();

/** Free for TCP and for UDP (a relay binds its SRT listener on the port it is given, as others bind TCP). */
async function bindable(port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/**
 * A TCP port free on loopback, for a process that binds it later: picked at random
 * below the ephemeral range, where nothing takes ports on its own, never the same
 * one twice in this process.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const bottom = 10_000;
  const top = low > bottom + 1000 ? low - 1 : 65535;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between ${bottom} and ${top}`);
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
