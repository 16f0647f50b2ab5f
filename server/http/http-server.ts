import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';

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
    void reply.status(status).send({ code: err.code ?? 'INTERNAL', message: err.message });
  });
  return app as unknown as FastifyInstance;
}
