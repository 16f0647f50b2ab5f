import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import { ErrorCodes, RelayError } from '../errors.ts';

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'CONTENT_TYPE_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BODY_INVALID',
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
    // Validation refuses what does not match: no coercion of types, no silent removal of unknown keys.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof RelayError) {
      // A RelayError carries its status; a handler may override it with statusCode.
      if (err.status >= 500 && err.code !== 'ADMIN_DISABLED') log.warn({ code: err.code, err: err.message }, 'HTTP request refused');
      return reply.status(err.statusCode ?? err.status).send({ code: err.code, message: err.message });
    }
    if (err.validation) {
      // Schema validation (fastify's, from the route's JSON Schema): which part and why.
      const code = err.validationContext === 'body' ? 'BODY_INVALID' : 'REQUEST_INVALID';
      return reply.status(400).send({ code, message: `${ErrorCodes[code].message}: ${err.message}` });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) log.error({ err }, 'HTTP handler failed');
    // Bodies fastify refuses before any handler runs get the relay's stable codes.
    const code = FASTIFY_CODES[err.code] ?? err.code ?? 'INTERNAL';
    return reply.status(status).send({ code, message: err.message });
  });
  return app as unknown as FastifyInstance;
}
