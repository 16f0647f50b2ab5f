import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEMO_STREAM = 'demo';

/**
 * The all-in-one mode's demo stream key: RELAY_DEMO_KEY if set, else the one
 * kept in the data folder, else a new one written there (readable by the owner only).
 */
export function demoStreamKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): KeptSecret {
  return keptSecret(dataDir, 'demo-stream-key', env.RELAY_DEMO_KEY);
}

/**
 * The all-in-one mode's admin token (API and dashboard), when none is configured:
 * kept in the data folder like the demo key.
 */
export function localAdminToken(dataDir: string): KeptSecret {
  return keptSecret(dataDir, 'admin-token', undefined);
}

export interface KeptSecret {
  key: string;
  source: 'env' | 'file' | 'new';
  file: string;
}

/** `given` if set, else the secret kept in `<dataDir>/<name>`, else a new one written there (mode 600). */
function keptSecret(dataDir: string, name: string, given: string | undefined): KeptSecret {
  const file = join(dataDir, name);
  if (given) return { key: given, source: 'env', file };
  try {
    const key = readFileSync(file, 'utf8').trim();
    if (key) return { key, source: 'file', file };
  } catch {
    // first start
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(18).toString('base64url');
  writeFileSync(file, key + '\n', { mode: 0o600 });
  return { key, source: 'new', file };
}
