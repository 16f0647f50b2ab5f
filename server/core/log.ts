import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LogSettings {
  level: string;
  /** Readable single lines (all-in-one mode on a terminal) instead of JSON. */
  pretty: boolean;
}

/**
 * The root logger. Modules take `log.child({ module: 'edge.feed' })`; nothing in
 * library code writes to the console.
 */
export function createLogger(settings: LogSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { pid: process.pid },
    // Stream keys are secrets: whatever field they hide in, they are not printed.
    redact: { paths: ['key', 'streamKey', '*.key', '*.streamKey'], censor: '[secret]' },
  };
  if (settings.pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' } },
    });
  }
  return pino(options);
}
