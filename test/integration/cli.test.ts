import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { AccessKeys } from '../../server/core/auth/access-keys.ts';
import { startNats } from '../helpers/nats.ts';
import { makeCa, makeServerCertificate } from '../helpers/certificates.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KEY = 'cli-test-key-0123456789abc';
const STREAMS = JSON.stringify([{ name: 'main', key: KEY }]);

function runCli(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('the relay CLI', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let origin: RelayProcess;
  let edge: RelayProcess;

  before(async () => {
    nats = await startNats();
    origin = await startRelay('origin', { NATS_URL: nats.url, RELAY_STREAMS: STREAMS });
    edge = await startRelay('edge', { NATS_URL: nats.url, RELAY_STREAMS: STREAMS });
  });

  after(async () => {
    await edge?.stop();
    await origin?.stop();
    await nats?.cleanup();
  });

  test('origin and edge run as separate processes against one NATS', async () => {
    const viewer = watch(`ws://127.0.0.1:${edge.httpPort}/ws/main`);
    const publisher = startPublisher({ url: origin.rtmpUrl(KEY) });
    await waitFor('frames at the edge', () => viewer.record.fragments.length > 60, 20_000);
    await publisher.stop();
    viewer.close();
    assert.ok((await fetch(`${origin.http}/healthz`)).ok);
    assert.deepEqual(await (await fetch(`${edge.http}/healthz`)).json(), { status: 'ok', roles: ['edge'] });
    assert.equal(origin.output().includes(KEY), false, 'the origin never prints a configured key');
  });

  test('logs are JSON for the origin and edge roles, and readable lines in the all-in-one mode', async () => {
    const all = await startRelay('all', { RELAY_LOG_PRETTY: 'auto', RELAY_WEBRTC_ENABLED: 'false' });
    const role = await startRelay('edge', { NATS_URL: nats.url, RELAY_STREAMS: STREAMS, RELAY_LOG_PRETTY: 'auto' });
    try {
      await waitFor('the all-in-one logs', () => /Server listening/.test(all.output()), 10_000);
      const lines = all
        .output()
        .split('\n')
        .filter((l) => /Server listening|RTMP ingest listening/.test(l));
      assert.ok(lines.length >= 2, all.output());
      for (const line of lines) {
        assert.equal(line.trimStart().startsWith('{'), false, `readable: ${line}`);
        assert.match(line, /INFO/);
      }
      await waitFor('the edge logs', () => /Server listening/.test(role.output()), 10_000);
      const json = role
        .output()
        .split('\n')
        .filter((l) => l.includes('Server listening'));
      for (const line of json) assert.equal((JSON.parse(line) as { msg: string }).msg.startsWith('Server listening'), true);
    } finally {
      await all.stop();
      await role.stop();
    }
  });

  test('the all-in-one banner says what to type into OBS for RTMP, RTMPS (once it has a certificate) and WHIP, and the HLS URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-rtmps-'));
    const cert = makeServerCertificate(dir, makeCa(dir, 'cli'), 'relay');
    const rtmpsPort = await freePort();
    const plain = await startRelay('all', { RELAY_DEMO_KEY: KEY });
    const secure = await startRelay('all', {
      RELAY_DEMO_KEY: KEY,
      RELAY_RTMPS_PORT: String(rtmpsPort),
      RELAY_RTMPS_CERT_FILE: cert.cert,
      RELAY_RTMPS_KEY_FILE: cert.key,
    });
    try {
      for (const relay of [plain, secure]) await waitFor('the banner', () => /Stop with Ctrl\+C/.test(relay.output()), 10_000);
      for (const relay of [plain, secure]) {
        const banner = relay.output();
        assert.match(banner, new RegExp(`Server: +rtmp://[^ ]+:${relay.rtmpPort}/live\\n`));
        assert.match(banner, new RegExp(`Stream Key: ${KEY}`));
        assert.match(banner, new RegExp(`Service "WHIP"\\n +Server: +http://[^ ]+:${relay.httpPort}/whip/demo`));
        assert.match(banner, new RegExp(`HLS, for any player.*\\n +http://[^ ]+:${relay.httpPort}/hls/demo/index\\.m3u8\\n`));
      }
      assert.doesNotMatch(plain.output(), /rtmps:/, 'no RTMPS without a certificate');
      assert.match(secure.output(), new RegExp(`encrypted \\(RTMPS\\): rtmps://[^ ]+:${rtmpsPort}/live\\n`));
    } finally {
      await plain.stop();
      await secure.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad setting stops start-up with a message naming the key', () => {
    const run = runCli(['all'], { RELAY_HTTP_PORT: 'eighty', RELAY_DATA_DIR: '/tmp/unused' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /CONFIG_INVALID: .*http\.port \(env RELAY_HTTP_PORT\)/);
  });

  test('the origin and edge roles refuse to start without NATS_URL', () => {
    for (const role of ['origin', 'edge']) {
      const run = runCli([role], { NATS_URL: '', RELAY_NATS_URL: '' });
      assert.equal(run.status, 1, role);
      assert.match(run.stderr, new RegExp(`nats.url \\(env NATS_URL\\) is required for the ${role} role`));
    }
  });

  test('config lists every setting with its variable and hides keys, tokens, passwords and secrets', () => {
    const secrets = {
      RELAY_ADMIN_TOKEN: 'admin-token-Zb9VjYhQ2m0tq3k',
      RELAY_NATS_AUTH_PASSWORD: 'nats-password-Tq8mZ2vLw4',
      RELAY_NATS_AUTH_USER: 'relay',
      RELAY_AUTH_PLAYBACK_SECRETS: JSON.stringify(['playback-secret-bX7qL2v9ZtR4mW8nK3pS6y']),
    };
    const run = runCli(['config'], { RELAY_STREAMS: STREAMS, ...secrets });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /rtmp\.port = 1935\n {4}env RELAY_RTMP_PORT: /);
    assert.match(run.stdout, /"key":"\[secret\]"/);
    assert.match(run.stdout, /admin\.token = "\[secret\]"/);
    assert.match(run.stdout, /auth\.playbackSecrets = \["\[secret\]"\]/);
    for (const secret of [KEY, ...Object.values(secrets).filter((v) => v !== 'relay')])
      assert.equal(run.stdout.includes(secret.replace(/^\["|"\]$/g, '')), false, secret);
  });

  test('production mode refuses to start with an empty admin token, an example stream key or a NATS without credentials, naming each', () => {
    const run = runCli(['origin'], {
      NATS_URL: nats.url,
      RELAY_MODE: 'production',
      RELAY_ADMIN_TOKEN: '',
      RELAY_STREAMS: JSON.stringify([{ name: 'show', key: 'a-secret-stream-key-123' }]),
    });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /CONFIG_INSECURE: .*admin\.token is empty.*the key of stream "show" is an example from the docs.*nats\.auth is empty/);
    assert.equal(run.stderr.includes('a-secret-stream-key-123'), false, 'the secret itself is not printed');
    const byNodeEnv = runCli(['edge'], { NATS_URL: nats.url, NODE_ENV: 'production', RELAY_MODE: 'auto', RELAY_ADMIN_TOKEN: '' });
    assert.equal(byNodeEnv.status, 1);
    assert.match(byNodeEnv.stderr, /CONFIG_INSECURE/);
  });

  test('sign prints a publish key and a playback token that the relay accepts for that stream', () => {
    const env = { RELAY_AUTH_PUBLISH_SECRETS: JSON.stringify(['publish-secret-Zb9VjYhQ2m0tq3kRfx1LwA8c']) };
    const run = runCli(['sign', 'publish', 'show', '--ttl', '60'], env);
    assert.equal(run.status, 0, run.stderr);
    const [stream, expiry, sig] = run.stdout.trim().split('.');
    assert.equal(stream, 'show');
    assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 60)) < 10);
    assert.match(sig!, /^[A-Za-z0-9_-]{43}$/);
    const keys = new AccessKeys(
      { streams: [], auth: { publishSecrets: JSON.parse(env.RELAY_AUTH_PUBLISH_SECRETS) as string[], playbackSecrets: [], keysFile: '' } },
      pino({ level: 'silent' }),
    );
    assert.equal(keys.streamForKey(run.stdout.trim()), 'show');
    const noSecret = runCli(['sign', 'play', 'show'], {});
    assert.equal(noSecret.status, 1);
    assert.match(noSecret.stderr, /no auth\.playbackSecrets to sign with/);
    const badName = runCli(['sign', 'publish', 'a.b'], env);
    assert.match(badName.stderr, /STREAM_NAME_INVALID/);
  });
});
