import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';

const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

/**
 * The cluster dashboard at `/admin`, served by every node. The page itself holds
 * no data: it asks for the admin token and reads `/admin/api/cluster` (and, on a node
 * with a recorder, `/admin/api/recordings`) with it.
 */
export function attachDashboard(app: FastifyInstance): void {
  // hls.js (as it ships) plays recordings in the page, with the admin token on each request.
  const hlsJs = readFileSync(createRequire(import.meta.url).resolve('hls.js/dist/hls.light.min.js'), 'utf8');
  const page = { html: file('dashboard.html'), js: file('dashboard.js') };
  app.get('/admin/hls.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(hlsJs));
  app.get('/admin', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page.html));
  app.get('/admin/dashboard.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(page.js));
}
