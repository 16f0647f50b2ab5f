import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { RelayError } from '../errors.ts';
import { configSchema, type RelayConfig } from './schema.ts';

const DEFAULTS_FILE = fileURLToPath(new URL('../../../config/default.json', import.meta.url));

interface Leaf {
  path: string[];
  env: string;
  type: string;
  description: string;
}

/** `bus.maxAgeSeconds` -> `RELAY_BUS_MAX_AGE_SECONDS`. */
function envName(path: string[]): string {
  return 'RELAY_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Every settable key of the schema, with its environment variable. */
export function configLeaves(schema: z.ZodType = configSchema, path: string[] = []): Leaf[] {
  const def = (schema as unknown as { def: { type: string; shape?: Record<string, z.ZodType> } }).def;
  if (def.type === 'object' && def.shape) {
    return Object.entries(def.shape).flatMap(([key, child]) => configLeaves(child, [...path, key]));
  }
  return [{ path, env: envName(path), type: def.type, description: schema.description ?? '' }];
}

function fromEnv(raw: string, leaf: Leaf): unknown {
  switch (leaf.type) {
    case 'number': {
      const n = Number(raw);
      return raw.trim() === '' || Number.isNaN(n) ? raw : n;
    }
    case 'boolean':
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    case 'array':
    case 'object':
      try {
        return JSON.parse(raw);
      } catch {
        throw new RelayError('CONFIG_INVALID', `${leaf.env} must be JSON`);
      }
    default:
      return raw;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
  return out;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlainObject(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RelayError('CONFIG_INVALID', `cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RelayError('CONFIG_INVALID', `${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

export interface LoadOptions {
  /** A JSON file whose keys override the defaults (also RELAY_CONFIG). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Applied last: what a caller (a test, a sub-command) decides. */
  overrides?: unknown;
}

/**
 * Defaults from config/default.json, then the file, then the environment, then
 * the caller's overrides; validated once. A bad value throws CONFIG_INVALID
 * naming the key (and its environment variable).
 */
export function loadConfig(options: LoadOptions = {}): RelayConfig {
  const env = options.env ?? process.env;
  let merged = readJson(DEFAULTS_FILE, 'defaults file');
  const file = options.file ?? env.RELAY_CONFIG;
  if (file) merged = merge(merged, readJson(file, 'config file'));
  const fromEnvironment: Record<string, unknown> = {};
  const leaves = configLeaves();
  for (const leaf of leaves) {
    const raw = env[leaf.env];
    if (raw !== undefined) setPath(fromEnvironment, leaf.path, fromEnv(raw, leaf));
  }
  if (env.NATS_URL !== undefined && env.RELAY_NATS_URL === undefined) setPath(fromEnvironment, ['nats', 'url'], env.NATS_URL);
  merged = merge(merged, fromEnvironment);
  merged = merge(merged, options.overrides);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.join('.');
      const leaf = leaves.find((l) => l.path.join('.') === issue.path.slice(0, l.path.length).join('.'));
      const hint = leaf ? ` (env ${leaf.env})` : '';
      return `${key || '(root)'}${hint}: ${issue.message}`;
    });
    throw new RelayError('CONFIG_INVALID', lines.join('; '));
  }
  return result.data;
}
