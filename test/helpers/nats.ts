import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsServerProcess, type NatsServerOptions } from '../../node/nats-server-process.ts';

/** A real `nats-server -js` on a random port with a temporary store; one per test file. */
export async function startNats(options: Omit<NatsServerOptions, 'storeDir'> = {}): Promise<NatsServerProcess & { cleanup(): Promise<void> }> {
  const storeDir = mkdtempSync(join(tmpdir(), 'relay-nats-'));
  const server = new NatsServerProcess({ ...options, storeDir });
  await server.start();
  return Object.assign(server, {
    async cleanup() {
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  });
}
