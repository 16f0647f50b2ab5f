import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../config/load.ts';
import { isProduction, productionProblems, weakSecret } from './production-check.ts';

const STRONG = 'bX7#qL2v9Zt!R4mW8nK3pS6y';

test('example, placeholder, empty and repetitive secrets are weak; a random one is not', () => {
  for (const weak of [
    '',
    'a-secret-stream-key-123',
    'change-me-stream-key-0123',
    'CHANGEME-please-0000000000',
    'my-example-key-1234567',
    'aaaaaaaaaaaaaaaaaaaaaaaa',
    'abababab12121212',
  ]) {
    assert.ok(weakSecret(weak), JSON.stringify(weak));
  }
  assert.equal(weakSecret(STRONG), undefined);
  assert.equal(weakSecret('Zb9VjYhQ2m0tq3kRfx1LwA8c'), undefined);
});

test('production mode is chosen by mode, or by NODE_ENV when mode is auto', () => {
  assert.equal(isProduction('production', {}), true);
  assert.equal(isProduction('development', { NODE_ENV: 'production' }), false);
  assert.equal(isProduction('auto', { NODE_ENV: 'production' }), true);
  assert.equal(isProduction('auto', {}), false);
});

test('production refuses an empty admin token, example keys and an external NATS without credentials, naming each key but no secret', () => {
  const config = loadConfig({ env: {}, overrides: { nats: { url: 'nats://nats:4222' }, streams: [{ name: 'show', key: 'a-secret-stream-key-123' }] } });
  const problems = productionProblems(config);
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0]!, /^admin\.token is empty/);
  assert.match(problems[1]!, /the key of stream "show" is an example/);
  assert.match(problems[2]!, /nats\.auth is empty/);
  assert.equal(problems.join().includes('a-secret-stream-key-123'), false);
});

test('production accepts strong secrets everywhere', () => {
  const config = loadConfig({
    env: {},
    overrides: {
      nats: { url: 'nats://nats:4222', auth: { token: 'Tq8#mZ2v!Lw4Rk9pX3nB7yCs' } },
      admin: { token: STRONG },
      streams: [{ name: 'show', key: 'Zb9VjYhQ2m0tq3kRfx1LwA8c' }],
      auth: { publishSecrets: ['P'.repeat(8) + 'Zb9VjYhQ2m0tq3kRfx1LwA8c'] },
    },
  });
  assert.deepEqual(productionProblems(config), []);
  config.auth.playbackSecrets.push('x'.repeat(40));
  assert.deepEqual(productionProblems(config), ['auth.playbackSecrets #1 has fewer than 8 different characters']);
});

test('the embedded NATS of the all-in-one mode needs no credentials', () => {
  const config = loadConfig({ env: {}, overrides: { admin: { token: STRONG } } });
  assert.deepEqual(productionProblems(config), []);
});
