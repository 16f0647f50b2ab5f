import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../server/core/config/load.ts';
import type { RelayConfig } from '../../server/core/config/schema.ts';
import { startNode, type RelayNode, type Role } from '../../node/relay-node.ts';

export interface TestNode {
  node: RelayNode;
  config: RelayConfig;
  /** Every log line written so far (JSON). */
  logs(): string;
  rtmpUrl(key: string, app?: string): string;
  wsUrl(stream: string): string;
  http: string;
}

/** A relay node in this process, on free ports, against a given NATS, logging into memory. */
export async function startTestNode(roles: Role[], natsUrl: string, overrides: Record<string, unknown> = {}): Promise<TestNode> {
  const config = loadConfig({
    env: {},
    overrides: {
      nats: { url: natsUrl },
      rtmp: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      bus: { maxAgeSeconds: 20 },
      // Tests measure passthrough unless they ask for transcoding (2 cores are shared).
      transcode: { enabled: false },
      ...overrides,
      // SRT listens on a port of its own per node, whatever else a test sets of it.
      srt: { host: '127.0.0.1', port: 0, ...(overrides.srt as object | undefined) },
    },
  });
  let lines = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines += chunk.toString();
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const node = await startNode(roles, config, log);
  const rtmpPort = node.origin?.rtmp.port ?? 0;
  return {
    node,
    config,
    logs: () => lines,
    rtmpUrl: (key, app = 'live') => `rtmp://127.0.0.1:${rtmpPort}/${app}/${key}`,
    wsUrl: (stream) => `ws://127.0.0.1:${node.httpPort}/ws/${stream}`,
    http: `http://127.0.0.1:${node.httpPort}`,
  };
}
