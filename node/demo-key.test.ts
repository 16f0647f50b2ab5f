import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../server/core/config/load.ts';
import { demoStreamKey } from './demo-key.ts';

test('the demo key is created on first start, kept in the data folder, and reused', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'demo-')), 'data');
  const first = demoStreamKey(dir, {});
  assert.equal(first.source, 'new');
  assert.match(first.key, /^[A-Za-z0-9_-]{24}$/);
  assert.equal(statSync(first.file).mode & 0o777, 0o600, 'readable by its owner only');
  const second = demoStreamKey(dir, {});
  assert.deepEqual({ key: second.key, source: second.source }, { key: first.key, source: 'file' });
  assert.equal(readFileSync(first.file, 'utf8').trim(), first.key);
  // and it is a valid stream key for the config schema
  loadConfig({ env: {}, overrides: { streams: [{ name: 'demo', key: first.key }] } });
});

test('RELAY_DEMO_KEY sets the demo key instead', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-'));
  assert.deepEqual(demoStreamKey(dir, { RELAY_DEMO_KEY: 'from-the-environment-123' }).key, 'from-the-environment-123');
});
