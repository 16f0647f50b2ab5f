import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'CONTENT_TYPE_INVALID',
};

/**
 * The HTTP listener a node serves: roles add their routes to it (in the
 * all-in-one mode origin and edge share one port).
 */
export function createHttpServer(log: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: log.child({ module: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) log.error({ err }, 'HTTP handler failed');
    // Bodies fastify refuses before any handler runs get the relay's stable codes.
    const code = FASTIFY_CODES[err.code] ?? err.code ?? 'INTERNAL';
    void reply.status(status).send({ code, message: err.message });
  });
  return app as unknown as FastifyInstance;
}
