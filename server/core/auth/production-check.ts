import type { RelayConfig } from '../config/schema.ts';

/** Secrets that appear in this project's own docs and manifests: fine to try the relay, never to run it. */
const EXAMPLE_SECRETS = new Set(['a-secret-stream-key-123', 'a-long-random-secret', 'change-me-stream-key-0123', 'change-me-to-a-long-random-token']);
const PLACEHOLDER = /change-?me|example|placeholder|default|password|secret-?key|^test|^demo/i;

/** Why `value` is not a secret fit for production, or undefined when it is. */
export function weakSecret(value: string): string | undefined {
  if (!value) return 'is empty';
  if (EXAMPLE_SECRETS.has(value)) return 'is an example from the docs';
  if (PLACEHOLDER.test(value)) return 'looks like a placeholder';
  if (new Set(value).size < 8) return 'has fewer than 8 different characters';
  return undefined;
}

/** Whether `mode` means production here: auto follows NODE_ENV. */
export function isProduction(mode: RelayConfig['mode'], env: NodeJS.ProcessEnv = process.env): boolean {
  return mode === 'production' || (mode === 'auto' && env.NODE_ENV === 'production');
}

/**
 * What production mode refuses to start with: every secret of the config (the
 * admin token, stream keys, signing secrets) and, for an external NATS, its
 * credentials. One line per problem, naming the key, never the secret. (The keys
 * file is checked as it is read: AccessKeys.)
 */
export function productionProblems(config: RelayConfig): string[] {
  const problems: string[] = [];
  const check = (what: string, value: string) => {
    const why = weakSecret(value);
    if (why) problems.push(`${what} ${why}`);
  };
  check('admin.token', config.admin.token);
  for (const s of config.streams) check(`the key of stream "${s.name}"`, s.key);
  config.auth.publishSecrets.forEach((s, i) => check(`auth.publishSecrets #${i + 1}`, s));
  config.auth.playbackSecrets.forEach((s, i) => check(`auth.playbackSecrets #${i + 1}`, s));
  if (config.nats.url) {
    const { user, password, token, nkeySeedFile, credsFile } = config.nats.auth;
    if (!user && !token && !nkeySeedFile && !credsFile)
      problems.push('nats.auth is empty: an external NATS needs credentials (user/password, token, nkeySeedFile or credsFile)');
    if (user) check('nats.auth.password', password);
    if (token) check('nats.auth.token', token);
  }
  return problems;
}
