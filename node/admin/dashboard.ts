import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

/**
 * The cluster dashboard at `/admin`, served by every node. The page itself holds
 * no data: it asks for the admin token and reads `/admin/api/cluster` with it.
 */
export function attachDashboard(app: FastifyInstance): void {
  const page = { html: file('dashboard.html'), js: file('dashboard.js') };
  app.get('/admin', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page.html));
  app.get('/admin/dashboard.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(page.js));
}
