import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { arch } from 'node:process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { findMediasoupWorker, recipeHash } from '../../server/core/webrtc/mediasoup/mediasoup-engine.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const version = (JSON.parse(readFileSync(`${ROOT}node_modules/mediasoup/package.json`, 'utf8')) as { version: string }).version;

/** scripts/lib/mediasoup-worker.sh's ensure_mediasoup_worker, as scripts/start and scripts/test run it (no worker given). */
function ensure(): { bin: string; stderr: string; ms: number } {
  const env = { ...process.env };
  delete env.MEDIASOUP_WORKER_BIN;
  const started = Date.now();
  const run = spawnSync('bash', ['-c', 'set -euo pipefail; . scripts/lib/mediasoup-worker.sh; ensure_mediasoup_worker; echo "$MEDIASOUP_WORKER_BIN"'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return { bin: run.stdout.trim(), stderr: run.stderr, ms: Date.now() - started };
}

describe('the mediasoup worker, built offline into the project (scripts/lib/mediasoup-worker.sh)', () => {
  test("the worker the test command built is in the project's cache, keyed by version, machine and the recipe's hash, and a second run reuses it at once", () => {
    const again = ensure();
    const machine = arch === 'x64' ? 'x86_64' : arch === 'arm64' ? 'aarch64' : arch;
    assert.equal(again.bin, `${ROOT}.cache/mediasoup-worker/${version}-${machine}-${recipeHash()}/mediasoup-worker`);
    assert.doesNotMatch(again.stderr, /building/, 'nothing built the second time');
    assert.ok(again.ms < 10_000, `took ${again.ms} ms`);
    // The relay finds the same binary by itself (no MEDIASOUP_WORKER_BIN needed), and knows it carries the patches.
    const saved = process.env.MEDIASOUP_WORKER_BIN;
    delete process.env.MEDIASOUP_WORKER_BIN;
    try {
      assert.deepEqual(findMediasoupWorker(), { bin: again.bin, patched: true });
    } finally {
      if (saved !== undefined) process.env.MEDIASOUP_WORKER_BIN = saved;
    }
  });

  test('npm ci neither downloaded nor built a worker (MEDIASOUP_WORKER_BIN was set), and the one built runs: mediasoup starts it', async () => {
    assert.equal(existsSync(`${ROOT}node_modules/mediasoup/worker/out`), false);
    process.env.MEDIASOUP_WORKER_BIN = ensure().bin;
    const ms = await import('mediasoup');
    const worker = await ms.createWorker({ logLevel: 'warn', disableLiburing: true });
    try {
      assert.ok(worker.pid > 0);
      const usage = await worker.getResourceUsage();
      assert.ok(usage.ru_maxrss > 0, 'the worker answers over its channel');
    } finally {
      worker.close();
    }
  });
});
