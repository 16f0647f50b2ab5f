import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundlePlayer } from './watch-page.ts';

test('the player bundles into one browser module, with its source map and nothing of the server in it', () => {
  const { js, map } = bundlePlayer();
  assert.match(js, /\/\/# sourceMappingURL=player\.js\.map\s*$/);
  assert.ok((JSON.parse(map) as { sources: string[] }).sources.some((s) => s.endsWith('src/player.ts')));
  assert.doesNotMatch(js, /from ["']node:|require\(/, 'no Node module in the browser bundle');
  assert.doesNotMatch(js, /nats|fastify|werift/i, 'nothing of the server');
  assert.ok(js.length < 100_000, `${js.length} bytes`);
});
