import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createUser } from '@nats-io/nkeys';
import { connectNats, type NatsSecurity } from '../../server/core/bus/nats.ts';
import { NatsServerProcess } from '../../node/nats-server-process.ts';
import { RelayError } from '../../server/core/errors.ts';
import { createLogger } from '../../server/core/log.ts';
import { startRelay } from '../helpers/relay-process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const log = createLogger({ level: 'silent', pretty: false });
const none: NatsSecurity = { auth: { user: '', password: '', token: '', nkeySeedFile: '', credsFile: '' }, tls: { caFile: '', certFile: '', keyFile: '' } };
const secure = (auth: Partial<NatsSecurity['auth']>, tls: Partial<NatsSecurity['tls']> = {}): NatsSecurity => ({
  auth: { ...none.auth, ...auth },
  tls: { ...none.tls, ...tls },
});

/** A real nats-server -js with a config file (its authorization and TLS blocks). */
async function natsWith(dir: string, name: string, conf: string): Promise<NatsServerProcess> {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, conf);
  const server = new NatsServerProcess({ storeDir: join(dir, `${name}-store`), args: ['-c', file] });
  await server.start();
  return server;
}

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl, Debian's). */
function makeCertificates(dir: string) {
  const f = (n: string) => join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=relay-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('san.ext'),
    '-out',
    f('server.pem'),
  );
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

async function refusal(promise: Promise<unknown>): Promise<RelayError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RelayError, `a RelayError, not ${String(err)}`);
    return err;
  }
  assert.fail('the connection was accepted');
}

describe('NATS credentials and TLS', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-nats-auth-'));
  const nkey = createUser();
  let password: NatsServerProcess;
  let token: NatsServerProcess;
  let nkeyServer: NatsServerProcess;
  let tlsServer: NatsServerProcess;
  let certs: ReturnType<typeof makeCertificates>;

  before(async () => {
    certs = makeCertificates(dir);
    writeFileSync(join(dir, 'user.nk'), new TextDecoder().decode(nkey.getSeed()) + '\n');
    writeFileSync(join(dir, 'not-a-seed.nk'), 'hello\n');
    [password, token, nkeyServer, tlsServer] = await Promise.all([
      natsWith(dir, 'password', 'authorization { user: relay, password: "s3cret-pass" }\n'),
      natsWith(dir, 'token', 'authorization { token: "t0ken-value" }\n'),
      natsWith(dir, 'nkey', `authorization { users = [ { nkey: ${nkey.getPublicKey()} } ] }\n`),
      natsWith(dir, 'tls', `tls { cert_file: "${certs.cert}", key_file: "${certs.key}" }\nauthorization { user: relay, password: "s3cret-pass" }\n`),
    ]);
  });

  after(async () => {
    await Promise.all([password, token, nkeyServer, tlsServer].map((s) => s?.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function roundTrip(url: string, security: NatsSecurity): Promise<void> {
    const nc = await connectNats(url, 'auth-test', log, 5000, security);
    const sub = nc.subscribe('auth.test', { max: 1 });
    nc.publish('auth.test', 'hello');
    for await (const m of sub) assert.equal(m.string(), 'hello');
    await nc.close();
  }

  test('user and password: the right ones connect, a wrong password is refused at once with BUS_AUTH_FAILED', async () => {
    await roundTrip(password.url, secure({ user: 'relay', password: 's3cret-pass' }));
    const started = Date.now();
    const err = await refusal(connectNats(password.url, 'auth-test', log, 5000, secure({ user: 'relay', password: 'wrong' })));
    assert.equal(err.code, 'BUS_AUTH_FAILED');
    assert.ok(Date.now() - started < 4000, 'refused before the connect timeout');
    assert.equal((await refusal(connectNats(password.url, 'auth-test', log, 5000, none))).code, 'BUS_AUTH_FAILED');
  });

  test('a token connects, a wrong token is refused with BUS_AUTH_FAILED', async () => {
    await roundTrip(token.url, secure({ token: 't0ken-value' }));
    assert.equal((await refusal(connectNats(token.url, 'auth-test', log, 5000, secure({ token: 'nope' })))).code, 'BUS_AUTH_FAILED');
  });

  test("an NKey seed file signs the server's challenge; a file without a seed is a CONFIG_INVALID naming the key", async () => {
    await roundTrip(nkeyServer.url, secure({ nkeySeedFile: join(dir, 'user.nk') }));
    const bad = await refusal(connectNats(nkeyServer.url, 'auth-test', log, 5000, secure({ nkeySeedFile: join(dir, 'not-a-seed.nk') })));
    assert.equal(bad.code, 'CONFIG_INVALID');
    assert.match(bad.message, /nats\.auth\.nkeySeedFile/);
    const missing = await refusal(connectNats(nkeyServer.url, 'auth-test', log, 5000, secure({ nkeySeedFile: join(dir, 'missing.nk') })));
    assert.match(missing.message, /nats\.auth\.nkeySeedFile: cannot read/);
    assert.equal((await refusal(connectNats(nkeyServer.url, 'auth-test', log, 5000, none))).code, 'BUS_AUTH_FAILED');
  });

  test('TLS: the server is trusted through nats.tls.caFile; without it the certificate is refused', async () => {
    await roundTrip(tlsServer.url, secure({ user: 'relay', password: 's3cret-pass' }, { caFile: certs.ca }));
    const err = await refusal(connectNats(tlsServer.url, 'auth-test', log, 5000, secure({ user: 'relay', password: 's3cret-pass' })));
    assert.equal(err.code, 'BUS_UNAVAILABLE');
  });

  test('an edge configured through the environment reaches a NATS that requires credentials, and one with a wrong password stops at start with BUS_AUTH_FAILED', async () => {
    const env = {
      NATS_URL: tlsServer.url,
      RELAY_NATS_AUTH_USER: 'relay',
      RELAY_NATS_TLS_CA_FILE: certs.ca,
      RELAY_STREAMS: JSON.stringify([{ name: 'main', key: 'auth-test-key-0123456789' }]),
    };
    const edge = await startRelay('edge', { ...env, RELAY_NATS_AUTH_PASSWORD: 's3cret-pass' });
    try {
      const ready = await fetch(`${edge.http}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
    } finally {
      await edge.stop();
    }
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'edge'], {
      cwd: ROOT,
      env: { ...process.env, ...env, RELAY_NATS_AUTH_PASSWORD: 'wrong', RELAY_HTTP_PORT: '0', RELAY_LOG_PRETTY: 'false' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout + run.stderr, /BUS_AUTH_FAILED/);
  });
});
