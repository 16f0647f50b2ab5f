import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConnectionsPerAddress } from './connections-per-address.ts';
import type { Logger } from '../log.ts';
import { RelayError, type ErrorCode } from '../errors.ts';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'CONTENT_TYPE_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BODY_INVALID',
  FST_ERR_BAD_URL: 'REQUEST_INVALID',
  FST_ERR_MAX_PARAM_LENGTH: 'REQUEST_INVALID',
};

export interface HttpLimits {
  maxConnectionsPerAddress: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
};

/** A refusal as every HTTP client gets it: the code's status and a JSON body with the stable code. */
export function httpRefusal(err: RelayError): { status: number; body: { code: ErrorCode; message: string } } {
  return { status: err.status, body: { code: err.code, message: err.message } };
}

/**
 * A refusal written straight to a socket, for the places no HTTP framework reaches
 * (Node's parser errors, WebSocket upgrades, connections over the limit): the same
 * JSON with a stable code as every other refusal. Closes the connection. `status`
 * overrides the code's where HTTP has a more precise one (431 for a head too large).
 */
export function endWithError(socket: Duplex, err: RelayError, status = err.status): void {
  const body = JSON.stringify(httpRefusal(err).body);
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * The HTTP listener a node serves: roles add their routes to it (in the
 * all-in-one mode origin and edge share one port). Limits: connections per
 * remote address (WebSocket viewers included), time to send a request head and
 * a whole request.
 */
export function createHttpServer(
  log: Logger,
  limits: HttpLimits = { maxConnectionsPerAddress: 0, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 },
): FastifyInstance {
  const logger: FastifyBaseLogger = log.child({ module: 'http' });
  const app = Fastify({
    // A request without Host is served like any other (Node would answer 400 with no body).
    serverFactory: (handler) => createServer({ requireHostHeader: false }, handler),
    requestTimeout: limits.requestTimeoutMs,
    // Bytes Node's HTTP parser cannot read (or that come too slowly) get a stable code too.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
      if (err.code === 'HPE_HEADER_OVERFLOW') return endWithError(socket, new RelayError('REQUEST_INVALID', 'request head too large'), 431);
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return endWithError(socket, new RelayError('REQUEST_TIMEOUT'));
      endWithError(socket, new RelayError('REQUEST_INVALID', 'unreadable HTTP'));
    },
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // Validation refuses what does not match: no coercion of types, no silent removal of unknown keys.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // What the router refuses before any route matches (a path with a bad percent-escape, a
    // parameter past its length) bypasses setErrorHandler unless routed here.
    frameworkErrors: (err, _req, reply) => void refuse(err, reply),
  });
  // Every refusal of every route ends here, as a RelayError rendered by httpRefusal.
  const send = (reply: FastifyReply, err: RelayError, status = err.status) => reply.status(status).send(httpRefusal(err).body);
  const refuse = (err: FastifyError, reply: FastifyReply) => {
    if (err instanceof RelayError) {
      if (err.status >= 500 && err.code !== 'ADMIN_DISABLED') log.warn({ code: err.code, err: err.message }, 'HTTP request refused');
      return send(reply, err);
    }
    // Schema validation (fastify's, from the route's JSON Schema): which part and why.
    if (err.validation) return send(reply, new RelayError(err.validationContext === 'body' ? 'BODY_INVALID' : 'REQUEST_INVALID', err.message));
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      log.error({ err }, 'HTTP handler failed');
      return send(reply, new RelayError('INTERNAL'));
    }
    // What fastify refuses before any handler runs (bodies, URLs) gets the relay's stable codes, with fastify's status.
    return send(reply, new RelayError(FASTIFY_CODES[err.code] ?? 'REQUEST_INVALID', err.message), status);
  };
  app.setErrorHandler((err: FastifyError, _req, reply) => refuse(err, reply));
  app.setNotFoundHandler(() => {
    throw new RelayError('NOT_FOUND');
  });
  app.server.headersTimeout = limits.headersTimeoutMs;
  app.server.requestTimeout = limits.requestTimeoutMs;
  // How often Node looks for requests past their timeouts (default 30 s: too coarse for a 10 s limit).
  (app.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(limits.headersTimeoutMs, 1000);
  const perAddress = new ConnectionsPerAddress(limits.maxConnectionsPerAddress);
  let lastWarned = 0;
  app.server.on('connection', (socket: Socket) => {
    if (perAddress.admit(socket)) return;
    socket.on('error', () => {});
    endWithError(socket, new RelayError('TOO_MANY_CONNECTIONS'));
    // One line per second at most: a flood must not become a log flood.
    if (Date.now() - lastWarned > 1000) {
      lastWarned = Date.now();
      log.warn(
        { code: 'TOO_MANY_CONNECTIONS', remote: socket.remoteAddress, max: limits.maxConnectionsPerAddress, refusedSoFar: perAddress.refused },
        'HTTP connection refused: too many from one address',
      );
    }
  });
  return app;
}
