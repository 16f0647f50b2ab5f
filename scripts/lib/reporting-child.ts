import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A load-generator process of the benchmarks (a script under scripts/lib run with tsx):
 * commands go in as JSON lines on its stdin, and it reports a JSON line on stdout
 * every second.
 */
export function reportingChild<R>(script: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(script, import.meta.url).pathname, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  let last: R | undefined;
  let waiter: (() => void) | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    last = JSON.parse(line) as R;
    waiter?.();
  });
  return {
    /** The latest report (undefined before the first). */
    get report(): R | undefined {
      return last;
    },
    /** Resolves with the next report. */
    next: () =>
      new Promise<R>((resolve) => {
        waiter = () => {
          waiter = undefined;
          resolve(last!);
        };
      }),
    send: (cmd: object) => child.stdin.write(JSON.stringify(cmd) + '\n'),
    stop: () => child.kill('SIGKILL'),
  };
}
