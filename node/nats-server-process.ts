import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { RelayError } from '../server/core/errors.ts';
import type { Logger } from '../server/core/log.ts';

export interface NatsServerOptions {
  /** JetStream store directory (created if missing). */
  storeDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Further nats-server arguments (cluster routes, a config file...). */
  args?: string[];
  startTimeoutMs?: number;
  log?: Logger;
  /** Extra environment for the child (GODEBUG=gctrace=1 in the soak). */
  env?: Record<string, string>;
  /** Every line nats-server writes to stderr, for as long as it runs. */
  onStderrLine?: (line: string) => void;
}

/**
 * A local `nats-server -js` as a child process: the all-in-one mode's embedded
 * default, and every integration test's real server.
 */
export class NatsServerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  port = 0;

  constructor(private readonly options: NatsServerOptions) {}

  get url(): string {
    return `nats://${this.options.host ?? '127.0.0.1'}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const { storeDir, host = '127.0.0.1', port = 0, args = [], startTimeoutMs = 10_000, log, env, onStderrLine } = this.options;
    mkdirSync(storeDir, { recursive: true });
    const argv = ['-js', '-a', host, '-p', String(port === 0 ? -1 : port), '-sd', storeDir, ...args];
    let child: ChildProcess;
    try {
      child = spawn('nats-server', argv, { stdio: ['ignore', 'ignore', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
    } catch (err) {
      throw new RelayError('BUS_UNAVAILABLE', 'cannot start nats-server (apt-get install nats-server)', { cause: err });
    }
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const tail: string[] = [];
    let whileStarting: ((line: string) => void) | undefined;
    let pending = '';
    // The listener stays for the child's life, so its pipe never fills.
    child.stderr!.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (/\[(ERR|FTL)\]/.test(line)) log?.warn({ line }, 'nats-server');
        whileStarting?.(line);
        onStderrLine?.(line);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RelayError('BUS_UNAVAILABLE', `nats-server did not become ready in ${startTimeoutMs} ms: ${tail.join(' | ')}`)),
        startTimeoutMs,
      );
      whileStarting = (line) => {
        tail.push(line);
        if (tail.length > 5) tail.shift();
        const listening = /Listening for client connections on .*:(\d+)\s*$/.exec(line);
        if (listening) this.port = Number(listening[1]);
        if (line.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new RelayError('BUS_UNAVAILABLE', `cannot start nats-server: ${err.message} (apt-get install nats-server)`, { cause: err }));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new RelayError('BUS_UNAVAILABLE', `nats-server exited (${signal ?? code}) at start: ${tail.join(' | ')}`));
      });
    }).finally(() => {
      whileStarting = undefined;
    });
  }

  /** kill -9, as a crash would. */
  kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    return this.exited;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
