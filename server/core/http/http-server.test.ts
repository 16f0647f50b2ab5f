import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../log.ts';
import { RelayError } from '../errors.ts';
import { createHttpServer } from './http-server.ts';

let app: FastifyInstance;
let port = 0;

/** One raw request over a socket (no client library to tidy the path first): status and parsed body. */
async function raw(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const socket = connect(port, '127.0.0.1');
  socket.end(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const reply = Buffer.concat(chunks).toString('latin1');
  return { status: Number(reply.slice(9, 12)), body: JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, unknown> };
}

before(async () => {
  app = createHttpServer(createLogger({ level: 'silent', pretty: false }));
  app.get('/api/streams/:name', async (req) => ({ name: (req.params as { name: string }).name }));
  app.get('/refused', async () => {
    throw new RelayError('STREAM_UNKNOWN', 'no such stream');
  });
  app.get('/broken', async () => {
    throw new Error('a bug');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});

after(() => app.close());

test("a path with a broken percent-escape is refused with REQUEST_INVALID, not fastify's own code", async () => {
  const { status, body } = await raw('/api/str%ams/good');
  assert.equal(status, 400);
  assert.equal(body.code, 'REQUEST_INVALID');
  const param = await raw('/api/streams/go%zzod');
  assert.equal(param.status, 400);
  assert.equal(param.body.code, 'REQUEST_INVALID');
});

test("a route parameter past the router's length limit is refused with REQUEST_INVALID", async () => {
  const { status, body } = await raw(`/api/streams/${'a'.repeat(1000)}`);
  assert.equal(status, 414);
  assert.equal(body.code, 'REQUEST_INVALID');
});

test('a relay refusal keeps its code and status; an unexpected error is INTERNAL without its message; an unknown path is NOT_FOUND', async () => {
  assert.deepEqual(await raw('/api/streams/good'), { status: 200, body: { name: 'good' } });
  const refused = await raw('/refused');
  assert.equal(refused.status, 404);
  assert.equal(refused.body.code, 'STREAM_UNKNOWN');
  const broken = await raw('/broken');
  assert.equal(broken.status, 500);
  assert.equal(broken.body.code, 'INTERNAL');
  assert.doesNotMatch(String(broken.body.message), /a bug/);
  assert.equal((await raw('/nowhere')).body.code, 'NOT_FOUND');
});
