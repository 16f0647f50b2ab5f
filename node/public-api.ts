import type { FastifyInstance, FastifyReply } from 'fastify';
import { admitViewer, type ViewerAccess } from '../server/core/auth/viewer-access.ts';
import type { RenditionCatalog } from '../server/core/bus/rendition-catalog.ts';
import type { EdgeDirectory } from '../server/core/cluster/edge-directory.ts';
import { RelayError } from '../server/core/errors.ts';

/** Public answers, from any node: readable by a page on another origin, never cached. */
function publicAnswer(reply: FastifyReply): void {
  void reply.header('access-control-allow-origin', '*').header('cache-control', 'no-store');
}

/**
 * The public API every node serves: where a stream's next viewer should go
 * (`/api/route/<stream>[?exclude=edge-a,edge-b]`) and a stream's renditions
 * (`/api/streams/<stream>`). Both are public: names and routes, no media, so no
 * playback token.
 */
export function attachPublicApi(
  app: FastifyInstance,
  access: ViewerAccess,
  directory: EdgeDirectory,
  catalog: RenditionCatalog,
  regionHeader = 'x-relay-region',
): void {
  app.get<{ Params: { stream: string }; Querystring: { exclude?: string; region?: string } }>('/api/route/:stream', async (req, reply) => {
    const { stream } = req.params;
    publicAnswer(reply);
    admitViewer(access, { stream }, { playback: false });
    const exclude = new Set((req.query.exclude ?? '').split(',').filter(Boolean));
    // The viewer's region: asked for, or set by the load balancer in front; else this node's own.
    const header = req.headers[regionHeader];
    const region = req.query.region || (typeof header === 'string' ? header : undefined);
    const edge = directory.route(stream, exclude, { region });
    if (!edge) throw new RelayError('NO_EDGE_AVAILABLE');
    return {
      stream,
      edge: edge.id,
      ...(edge.region && { region: edge.region }),
      url: edge.url,
      watch: `${edge.url}/watch/${stream}?routed=1`,
      ws: `${edge.url.replace(/^http/, 'ws')}/ws/${stream}?routed=1`,
    };
  });
  app.get<{ Params: { stream: string } }>('/api/streams/:stream', async (req, reply) => {
    const { stream } = req.params;
    publicAnswer(reply);
    admitViewer(access, { stream }, { playback: false });
    return { stream, renditions: await catalog.renditions(stream) };
  });
}

/** The node's front page: its roles, and on an edge a link to each configured stream's watch page. */
export function attachIndexPage(app: FastifyInstance, streams: () => string[], roles: string[]): void {
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(indexPage(streams(), roles)));
}

function indexPage(streams: string[], roles: string[]): string {
  const items = roles.includes('edge') ? streams.map((s) => `<li><a href="/watch/${s}">${s}</a></li>`).join('') : '';
  return `<!doctype html><meta charset="utf-8"><title>relay</title><body style="font-family:system-ui;background:#0b0d10;color:#e8eaed"><h1>relay</h1><p>Roles: ${roles.join(', ')}</p><ul>${items}</ul>`;
}
