import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEMO_STREAM = 'demo';

/**
 * The all-in-one mode's demo stream key: RELAY_DEMO_KEY if set, else the one
 * kept in the data folder, else a new one written there (readable by the owner only).
 */
export function demoStreamKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): { key: string; source: 'env' | 'file' | 'new'; file: string } {
  const file = join(dataDir, 'demo-stream-key');
  if (env.RELAY_DEMO_KEY) return { key: env.RELAY_DEMO_KEY, source: 'env', file };
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
