import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

/** One readiness check's outcome. */
interface Check {
  ok: boolean;
  detail?: string;
}

/** Runs a check with a deadline: a hung NATS request is a failed check, not a hung probe. */
async function check(what: () => unknown, timeoutMs = 1500): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const ok = await Promise.race([
      Promise.resolve().then(what),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return ok === false ? { ok: false } : { ok: true };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** Named readiness checks: each true (or resolving to anything but false) when its part of the node can work. */
export type Readiness = Record<string, () => unknown>;

/**
 * Health on every node: `/healthz` (the process answers), `/readyz` (every check
 * passes within its deadline and the node is not draining: what a load balancer
 * asks), and `/metrics`. Returns the readiness checks, for the roles to add theirs.
 */
export function attachHealth(http: FastifyInstance, roles: string[], registry: Registry, draining: () => boolean): Readiness {
  const readiness: Readiness = {};
  http.get('/healthz', async () => ({ status: 'ok', roles }));
  http.get('/readyz', async (_req, reply) => {
    const names = Object.keys(readiness);
    const results = await Promise.all(names.map((n) => check(readiness[n]!)));
    const checks: Record<string, Check> = {};
    names.forEach((n, i) => (checks[n] = results[i]!));
    checks.draining = { ok: !draining() };
    const ready = Object.values(checks).every((c) => c.ok);
    return reply
      .status(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'not ready', roles, checks });
  });
  readiness.http = () => http.server.listening;
  http.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return readiness;
}
