import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RelayConfig } from '../server/core/config/schema.ts';
import type { Logger } from '../server/core/log.ts';
import { NatsServerProcess } from './nats-server-process.ts';

/**
 * The all-in-one mode's own nats-server (no NATS URL configured): JetStream with
 * its store in `<dataDir>/nats`, its pid in `<dataDir>/nats-server.pid`.
 */
export async function startEmbeddedNats(config: RelayConfig, log: Logger): Promise<NatsServerProcess> {
  const storeDir = resolve(join(config.dataDir, 'nats'));
  const nlog = log.child({ module: 'nats-server' });
  const pidFile = join(config.dataDir, 'nats-server.pid');
  stopStaleNats(pidFile, nlog);
  const started = await startEmbeddedNatsOn(config, storeDir, nlog);
  writeFileSync(pidFile, `${started.pid}\n`);
  return started;
}

/** A relay killed with -9 leaves its nats-server running on the store: stop that one first. */
function stopStaleNats(pidFile: string, log: Logger): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  try {
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nats-server')) {
      process.kill(pid, 'SIGKILL');
      log.warn({ pid }, 'stopped a nats-server left over by an earlier run');
    }
  } catch {
    // not running any more
  }
  rmSync(pidFile, { force: true });
}

async function startEmbeddedNatsOn(config: RelayConfig, storeDir: string, nlog: Logger): Promise<NatsServerProcess> {
  const server = new NatsServerProcess({ storeDir, port: config.nats.embeddedPort, log: nlog });
  try {
    await server.start();
  } catch (err) {
    if (config.nats.embeddedPort === 0 || !/address already in use/i.test((err as Error).message)) throw err;
    nlog.warn({ port: config.nats.embeddedPort }, 'port taken; the embedded nats-server uses a free port instead');
    const fallback = new NatsServerProcess({ storeDir, port: 0, log: nlog });
    await fallback.start();
    nlog.info({ url: fallback.url, storeDir }, 'embedded nats-server started');
    return fallback;
  }
  nlog.info({ url: server.url, storeDir }, 'embedded nats-server started');
  return server;
}
