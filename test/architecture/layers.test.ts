import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The layers, bottom up. A file may import its own layer and the layers below,
 * never one above or beside it:
 *
 *   node     node/          CLI, role wiring, health, public and admin API, the embedded nats-server
 *   origin   server/origin  ingest, transcode     edge  edge/  feed, egress, player     recorder  recorder/  recordings, rewind
 *   core     server/core    frame type, media, bus, cluster, config, errors, logging, HTTP plumbing
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type Layer = 'core' | 'origin' | 'edge' | 'recorder' | 'node' | 'test' | 'scripts';
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  core: ['core'],
  origin: ['core', 'origin'],
  edge: ['core', 'edge'],
  recorder: ['core', 'recorder'],
  node: ['core', 'origin', 'edge', 'recorder', 'node'],
  // Tests and benchmarks sit above everything.
  test: ['core', 'origin', 'edge', 'recorder', 'node', 'test'],
  scripts: ['core', 'origin', 'edge', 'recorder', 'node', 'test', 'scripts'],
};

export function layerOf(file: string): Layer | undefined {
  const rel = relative(ROOT, file).split('\\').join('/');
  if (rel.startsWith('server/core/')) return 'core';
  if (rel.startsWith('server/origin/')) return 'origin';
  if (rel.startsWith('node/')) return 'node';
  if (rel.startsWith('edge/')) return 'edge';
  if (rel.startsWith('recorder/')) return 'recorder';
  if (rel.startsWith('test/')) return 'test';
  if (rel.startsWith('scripts/')) return 'scripts';
  return undefined;
}

/** A unit test sits beside its code and may use the shared test helpers and fixtures, nothing else above. */
function allowed(from: string, to: string): boolean {
  const a = layerOf(from);
  const b = layerOf(to);
  if (!a || !b) return false;
  if (from.endsWith('.test.ts') && b === 'test' && /\/test\/(helpers|fixtures)\//.test(to)) return true;
  return MAY_IMPORT[a].includes(b);
}

/**
 * The player runs in browsers: its modules may import each other and the viewer
 * protocol (types the server uses too), nothing else of the relay.
 */
function playerMayImport(from: string, to: string): boolean {
  const rel = (f: string) => relative(ROOT, f).split('\\').join('/');
  if (!rel(from).startsWith('edge/player/src/') || from.endsWith('.test.ts')) return true;
  return rel(to).startsWith('edge/player/src/') || rel(to) === 'edge/protocol.ts';
}

/**
 * Third-party internals stay behind one adapter each: the only files that may
 * import these packages (type-only imports included).
 */
const ADAPTERS: Record<string, readonly string[]> = {
  werift: ['server/core/webrtc/werift-engine.ts'],
  // The mediasoup adapter is a folder: the engine, and the SDP mapping to its parameters (types only).
  mediasoup: ['server/core/webrtc/mediasoup/mediasoup-engine.ts', 'server/core/webrtc/mediasoup/sdp.ts'],
  'sdp-transform': ['server/core/webrtc/mediasoup/sdp.ts'],
  'node-media-server': ['server/origin/ingest/rtmp-ingest.ts'],
  '@nats-io/nats-core': ['server/core/bus/nats.ts'],
  '@nats-io/transport-node': ['server/core/bus/nats.ts'],
  '@nats-io/jetstream': ['server/core/bus/nats.ts'],
  '@nats-io/kv': ['server/core/bus/nats.ts'],
  '@nats-io/obj': ['server/core/bus/nats.ts'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name));
}

function importsOf(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
}

const files = ['server', 'edge', 'recorder', 'node'].flatMap(sourceFiles);

describe('layers', () => {
  test('every file under server/, edge/ and node/ belongs to a layer', () => {
    const stray = files.filter((f) => !layerOf(f)).map((f) => relative(ROOT, f));
    assert.deepEqual(stray, [], 'files outside server/core, server/origin, node and edge/');
  });

  test('no import runs up a layer or sideways between origin and edge', () => {
    const wrong: string[] = [];
    for (const file of files) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (!allowed(file, target))
          wrong.push(`${relative(ROOT, file)} (${layerOf(file)}) -> ${relative(ROOT, target)} (${layerOf(target) ?? 'outside the layers'})`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('werift, mediasoup, node-media-server and nats.js are imported by their adapter only', () => {
    const wrong: string[] = [];
    for (const file of files) {
      if (file.endsWith('.test.ts')) continue; // a contract test pins the adapter's assumptions
      for (const spec of importsOf(file)) {
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        const only = ADAPTERS[pkg];
        if (only && !only.includes(relative(ROOT, file))) wrong.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('the checker itself sees a forbidden arrow', () => {
    assert.equal(allowed(join(ROOT, 'server/core/errors.ts'), join(ROOT, 'edge/edge.ts')), false, 'core -> edge');
    assert.equal(allowed(join(ROOT, 'edge/edge.ts'), join(ROOT, 'server/origin/origin.ts')), false, 'edge -> origin');
    assert.equal(allowed(join(ROOT, 'server/origin/origin.ts'), join(ROOT, 'edge/edge.ts')), false, 'origin -> edge');
    assert.equal(allowed(join(ROOT, 'server/origin/origin.ts'), join(ROOT, 'node/relay-node.ts')), false, 'origin -> node');
    assert.equal(allowed(join(ROOT, 'server/core/bus/subjects.ts'), join(ROOT, 'test/helpers/nats.ts')), false, 'code -> test helpers');
    assert.equal(allowed(join(ROOT, 'node/relay-node.ts'), join(ROOT, 'edge/edge.ts')), true, 'node -> edge');
    assert.equal(playerMayImport(join(ROOT, 'edge/player/src/player.ts'), join(ROOT, 'edge/edge.ts')), false, 'player -> edge');
    assert.equal(playerMayImport(join(ROOT, 'edge/player/src/player.ts'), join(ROOT, 'edge/protocol.ts')), true, 'player -> protocol');
    assert.ok(
      importsOf(join(ROOT, 'node/relay-node.ts')).some((s) => s.includes('edge')),
      'imports are read',
    );
  });
});
