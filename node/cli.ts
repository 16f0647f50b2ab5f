#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { AccessKeys } from '../server/core/auth/access-keys.ts';
import { isProduction, productionProblems } from '../server/core/auth/production-check.ts';
import { signPlaybackToken, signPublishKey } from '../server/core/auth/signatures.ts';
import { configLeaves, loadConfig } from '../server/core/config/load.ts';
import type { RelayConfig } from '../server/core/config/schema.ts';
import { DEMO_STREAM, demoStreamKey, localAdminToken, type KeptSecret } from './demo-key.ts';
import { RelayError } from '../server/core/errors.ts';
import { createLogger } from '../server/core/log.ts';
import { assertStreamName } from '../server/core/media/stream-name.ts';
import { publicHost } from '../server/core/http/net-address.ts';
import { startNode, type Role } from './relay-node.ts';

const USAGE = `usage: relay [all|origin|edge|recorder|config] [--config file.json]
       relay sign publish|play <stream> [--ttl seconds] [--config file.json]

  all      origin, edge and recorder in one process, with a local nats-server unless NATS_URL is set (default)
  origin   RTMP ingest -> JetStream (needs NATS_URL)
  edge     JetStream -> viewers: watch page, WebSocket fMP4 (needs NATS_URL)
  recorder JetStream -> recordings (recording.enabled, streams[].record; needs NATS_URL)
  config   print every setting: its value, environment variable and meaning
  sign     print a signed publish key or playback token for <stream>, with the first
           auth.publishSecrets / auth.playbackSecrets (keys file included); --ttl: 86400 for
           publish keys, 3600 for playback tokens

  SIGHUP re-reads auth.keysFile (it is also re-read when it changes).`;

const SIGN_TTL_SECONDS = { publish: 86_400, play: 3_600 } as const;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { config: { type: 'string' }, ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  const command = positionals[0] ?? 'all';
  if (values.help || !['all', 'origin', 'edge', 'recorder', 'config', 'sign'].includes(command)) {
    process.stdout.write(USAGE + '\n');
    process.exit(values.help ? 0 : 2);
  }
  const config = loadConfig({ file: values.config });
  if (command === 'config') return explain(config);
  if (command === 'sign') return sign(config, positionals[1], positionals[2], values.ttl);
  const roles: Role[] = command === 'all' ? ['origin', 'edge', 'recorder'] : [command as Role];
  if (command !== 'all' && !config.nats.url) throw new RelayError('CONFIG_INVALID', `nats.url (env NATS_URL) is required for the ${command} role`);
  let demo: KeptSecret | undefined;
  if (command === 'all' && !config.streams.some((s) => s.name === DEMO_STREAM)) {
    demo = demoStreamKey(config.dataDir);
    config.streams.push({ name: DEMO_STREAM, key: demo.key });
  }
  // The all-in-one mode always has a dashboard: a token kept in the data folder unless one is set.
  let admin: KeptSecret | undefined;
  if (command === 'all' && !config.admin.token) {
    admin = localAdminToken(config.dataDir);
    config.admin.token = admin.key;
  }
  // Readable lines for a person running everything on one machine; JSON for the roles a cluster runs.
  const pretty = config.log.pretty === 'true' || (config.log.pretty === 'auto' && command === 'all');
  const log = createLogger({ level: config.log.level, pretty });
  const production = isProduction(config.mode);
  const keys = new AccessKeys(config, log.child({ module: 'auth' }), { production });
  if (production) {
    const problems = productionProblems(config);
    if (problems.length) throw new RelayError('CONFIG_INSECURE', problems.join('; '));
  }
  const node = await startNode(roles, config, log, keys);
  process.on('SIGHUP', () => keys.reload());
  if (!config.admin.token) log.warn({ code: 'ADMIN_DISABLED' }, 'no admin token (admin.token, RELAY_ADMIN_TOKEN): the admin API and dashboard are off');
  if (command === 'all' || command === 'origin')
    printBanner(
      config,
      node.httpPort,
      node.origin?.rtmp.port ?? config.rtmp.port,
      node.origin?.rtmps?.port,
      node.origin?.srt?.port,
      demo,
      command === 'all',
      admin,
    );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await node.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

function printBanner(
  config: RelayConfig,
  httpPort: number,
  rtmpPort: number,
  rtmpsPort: number | undefined,
  srtPort: number | undefined,
  demo: KeptSecret | undefined,
  withEdge: boolean,
  admin: KeptSecret | undefined,
): void {
  const host = publicHost(config.rtmp.host);
  const web = config.http.publicUrl || `http://${publicHost(config.http.host)}:${httpPort}`;
  const lines = ['', 'Relay is running.', '', 'In OBS: Settings > Stream > Service "Custom..."', `  Server:     rtmp://${host}:${rtmpPort}/${config.rtmp.app}`];
  if (rtmpsPort !== undefined) lines.push(`  or, encrypted (RTMPS): rtmps://${host}:${rtmpsPort}/${config.rtmp.app}`);
  if (demo) {
    const where = demo.source === 'env' ? 'from RELAY_DEMO_KEY' : `kept in ${demo.file}; RELAY_DEMO_KEY sets another`;
    lines.push(`  Stream Key: ${demo.key}    (stream "${DEMO_STREAM}", ${where})`);
  } else lines.push(`  Stream Key: the key configured for your stream (streams[].key)`);
  if (srtPort !== undefined) {
    const key = demo ? demo.key : '<key>';
    lines.push(
      '',
      'Or over SRT (OBS: Service "Custom...", Server the URL, Stream Key empty):',
      `  srt://${host}:${srtPort}?streamid=${key}&latency=${config.srt.latencyMs * 1000}`,
    );
  }
  if (config.webrtc.enabled) {
    const stream = demo ? DEMO_STREAM : '<stream>';
    lines.push('', 'Or, OBS 30+: Service "WHIP"', `  Server:       ${web}/whip/${stream}`, '  Bearer Token: the same stream key');
  }
  if (withEdge) {
    lines.push('', 'Watch:');
    for (const s of config.streams) lines.push(`  ${web}/watch/${s.name}`);
    if (config.hls.enabled) {
      lines.push('', 'HLS, for any player (VLC, Safari, hls.js) or a CDN:');
      for (const s of config.streams) lines.push(`  ${web}/hls/${s.name}/index.m3u8`);
    }
  }
  if (config.admin.token) {
    lines.push('', 'Dashboard and admin API:', `  ${web}/admin`, `  Token: ${admin ? `kept in ${admin.file}` : 'admin.token (RELAY_ADMIN_TOKEN)'}`);
  }
  lines.push('', 'Stop with Ctrl+C.', '');
  process.stdout.write(lines.join('\n') + '\n');
}

/** `relay sign publish|play <stream>`: what a platform's backend would compute, for a person at a shell. */
function sign(config: RelayConfig, purpose: string | undefined, stream: string | undefined, ttl: string | undefined): void {
  if (purpose !== 'publish' && purpose !== 'play') throw new RelayError('REQUEST_INVALID', 'relay sign publish|play <stream> [--ttl seconds]');
  const name = assertStreamName(stream);
  const seconds = ttl === undefined ? SIGN_TTL_SECONDS[purpose] : Number(ttl);
  if (!Number.isInteger(seconds) || seconds <= 0) throw new RelayError('REQUEST_INVALID', '--ttl takes a whole number of seconds');
  const secret = new AccessKeys(config, createLogger({ level: 'silent', pretty: false })).signingSecret(purpose);
  if (!secret) throw new RelayError('CONFIG_INVALID', `no auth.${purpose === 'publish' ? 'publishSecrets' : 'playbackSecrets'} to sign with`);
  const expiresAt = Math.floor(Date.now() / 1000) + seconds;
  process.stdout.write((purpose === 'publish' ? signPublishKey(secret, name, expiresAt) : signPlaybackToken(secret, name, expiresAt)) + '\n');
}

function explain(config: RelayConfig): void {
  for (const leaf of configLeaves()) {
    let value: unknown = config;
    for (const p of leaf.path) value = (value as Record<string, unknown>)[p];
    if (leaf.path[0] === 'streams') value = (value as { name: string }[]).map((s) => ({ name: s.name, key: '[secret]' }));
    if (leaf.path[0] === 'auth' && Array.isArray(value)) value = value.map(() => '[secret]');
    if (/^(token|password)$/.test(leaf.path.at(-1)!) && value) value = '[secret]';
    process.stdout.write(`${leaf.path.join('.')} = ${JSON.stringify(value)}\n    env ${leaf.env}: ${leaf.description}\n`);
  }
}

main().catch((err: unknown) => {
  const message = err instanceof RelayError ? `${err.code}: ${err.message}` : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`relay: ${message}\n`);
  process.exit(1);
});
