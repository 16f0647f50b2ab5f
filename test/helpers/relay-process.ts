import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RelayProcess {
  child: ChildProcess;
  httpPort: number;
  rtmpPort: number;
  http: string;
  rtmpUrl(key: string): string;
  /** The SRT URL ffmpeg publishes to (`-f mpegts`). */
  srtUrl(key: string): string;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The relay CLI as a real child process, on free ports, with a temporary data folder. */
export async function startRelay(
  command: 'all' | 'origin' | 'edge' | 'recorder',
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  where: { launcher?: string[]; host?: string } = {},
): Promise<RelayProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'relay-data-'));
  const httpPort = await freePort();
  const rtmpPort = await freePort();
  const srtPort = await freePort();
  // `launcher`: a command the relay runs under (e.g. `ip netns exec <ns>`); `host`: the address it listens on and is reached at.
  const host = where.host ?? '127.0.0.1';
  const [bin, ...args] = [...(where.launcher ?? []), process.execPath, ...nodeArgs, '--import', 'tsx', join(ROOT, 'node/cli.ts'), command];
  const child = spawn(bin, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      RELAY_DATA_DIR: dataDir,
      RELAY_HTTP_HOST: host,
      RELAY_HTTP_PORT: String(httpPort),
      RELAY_RTMP_HOST: host,
      RELAY_RTMP_PORT: String(rtmpPort),
      RELAY_SRT_HOST: host,
      RELAY_SRT_PORT: String(srtPort),
      RELAY_NATS_EMBEDDED_PORT: '0',
      RELAY_LOG_PRETTY: 'false',
      RELAY_TRANSCODE_ENABLED: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const collect = (d: Buffer) => {
    out = (out + d.toString()).slice(-200_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(
      'the relay to answer /healthz',
      async () => {
        if (child.exitCode !== null) throw new Error(`relay exited at start:\n${out}`);
        return fetch(`http://${host}:${httpPort}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
      },
      20_000,
      100,
    );
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    child,
    httpPort,
    rtmpPort,
    http: `http://${host}:${httpPort}`,
    rtmpUrl: (key) => `rtmp://${host}:${rtmpPort}/live/${key}`,
    srtUrl: (key) => `srt://${host}:${srtPort}?streamid=${key}`,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
