import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RelayError } from '../errors.ts';
import { configLeaves, loadConfig } from './load.ts';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return { code: (e as RelayError).code, message: (e as Error).message };
  }
  return undefined;
};

test('the defaults in config/default.json are valid and say what they are for', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.rtmp.port, 1935);
  assert.equal(config.http.port, 8080);
  assert.equal(config.rtmp.app, 'live');
  for (const leaf of configLeaves()) assert.ok(leaf.description.length > 10, `${leaf.path.join('.')} has a description`);
});

test('a file overrides the defaults and the environment overrides the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'relay.json');
  writeFileSync(file, JSON.stringify({ http: { port: 9000 }, rtmp: { app: 'studio' } }));
  const config = loadConfig({ file, env: { RELAY_HTTP_PORT: '9100', NATS_URL: 'nats://n1:4222' } });
  assert.equal(config.http.port, 9100);
  assert.equal(config.rtmp.app, 'studio');
  assert.equal(config.nats.url, 'nats://n1:4222');
  assert.equal(config.rtmp.port, 1935);
});

test('a bad value stops start-up with a message naming the key and its variable', () => {
  assert.deepEqual(codeOf(() => loadConfig({ env: { RELAY_HTTP_PORT: 'eighty' } }))?.code, 'CONFIG_INVALID');
  assert.match(codeOf(() => loadConfig({ env: { RELAY_HTTP_PORT: 'eighty' } }))!.message, /http\.port \(env RELAY_HTTP_PORT\)/);
  assert.match(codeOf(() => loadConfig({ env: { RELAY_BUS_MAX_AGE_SECONDS: '-5' } }))!.message, /bus\.maxAgeSeconds/);
  assert.match(codeOf(() => loadConfig({ overrides: { rtmp: { prot: 1 } }, env: {} }))!.message, /rtmp.*prot/);
});

test('stream entries with bad names or short keys are refused', () => {
  const bad = codeOf(() => loadConfig({ env: { RELAY_STREAMS: '[{"name":"a.b","key":"short"}]' } }));
  assert.equal(bad?.code, 'CONFIG_INVALID');
  assert.match(bad.message, /streams\.0\.name/);
  assert.match(bad.message, /streams\.0\.key/);
  assert.equal(codeOf(() => loadConfig({ env: { RELAY_STREAMS: 'not json' } }))?.code, 'CONFIG_INVALID');
});

test('a forward URL that is not RTMP, RTMPS or SRT stops start-up with the reason, and good ones are kept', () => {
  const key = 'forward-key-0123456789';
  const bad = codeOf(() => loadConfig({ overrides: { streams: [{ name: 'cam', key, forward: ['http://example.com/live/x'] }] }, env: {} }));
  assert.equal(bad?.code, 'CONFIG_INVALID');
  assert.match(bad.message, /streams\.0\.forward\.0.*forward URL: http is not a forward protocol/);
  const forward = ['rtmp://a.rtmp.youtube.com/live2/abcd', 'srt://10.0.0.2:9000?streamid=k'];
  assert.deepEqual(loadConfig({ overrides: { streams: [{ name: 'cam', key, forward }] }, env: {} }).streams[0]!.forward, forward);
});

test('a missing or broken config file is a clear error', () => {
  assert.match(codeOf(() => loadConfig({ file: '/nonexistent/relay.json', env: {} }))!.message, /cannot read config file/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'bad.json'), '{ nope');
  assert.match(codeOf(() => loadConfig({ file: join(dir, 'bad.json'), env: {} }))!.message, /not valid JSON/);
});

test('NATS credentials: one way at a time, a password needs a user, and a client certificate needs its key', () => {
  const refused = (env: Record<string, string>) => {
    const err = codeOf(() => loadConfig({ env }));
    assert.equal(err?.code, 'CONFIG_INVALID', JSON.stringify(env));
    return err.message;
  };
  assert.match(refused({ RELAY_NATS_AUTH_TOKEN: 't', RELAY_NATS_AUTH_USER: 'u' }), /nats\.auth.*only one of user\/password, token, nkeySeedFile and credsFile/);
  assert.match(refused({ RELAY_NATS_AUTH_CREDS_FILE: '/a.creds', RELAY_NATS_AUTH_NKEY_SEED_FILE: '/b.nk' }), /only one of/);
  assert.match(refused({ RELAY_NATS_AUTH_PASSWORD: 'p' }), /nats\.auth.*password needs user/);
  assert.match(refused({ RELAY_NATS_TLS_CERT_FILE: '/c.pem' }), /nats\.tls.*certFile and keyFile go together/);
  const ok = loadConfig({ env: { RELAY_NATS_AUTH_USER: 'relay', RELAY_NATS_AUTH_PASSWORD: 'p', RELAY_NATS_TLS_CA_FILE: '/ca.pem' } });
  assert.deepEqual([ok.nats.auth.user, ok.nats.auth.password, ok.nats.tls.caFile], ['relay', 'p', '/ca.pem']);
});
