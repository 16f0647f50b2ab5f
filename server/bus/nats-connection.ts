import { connect, type NatsConnection } from '@nats-io/transport-node';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';

export type { NatsConnection };

const connected = new WeakMap<NatsConnection, boolean>();

/** Connected right now (not closed, not between a disconnect and a reconnect): for /readyz. */
export function isNatsConnected(nc: NatsConnection): boolean {
  return !nc.isClosed() && connected.get(nc) === true;
}

/**
 * Connects with endless reconnects (a relay outlives NATS restarts) and logs
 * status changes. `name` shows in the server's connection list.
 */
export async function connectNats(url: string, name: string, log: Logger, timeoutMs = 10_000): Promise<NatsConnection> {
  const servers = url.split(',').map((s) => s.trim()).filter(Boolean);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name,
      timeout: timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
      waitOnFirstConnect: true,
    });
  } catch (err) {
    throw new RelayError('BUS_UNAVAILABLE', `cannot connect to NATS at ${servers.join(', ')}: ${(err as Error).message}`, { cause: err });
  }
  connected.set(nc, true);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected.set(nc, false);
      else if (s.type === 'reconnect') connected.set(nc, true);
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.warn({ connection: name, status: s.type, server: 'server' in s ? s.server : undefined }, 'NATS connection status');
    }
  })().catch(() => {});
  return nc;
}
