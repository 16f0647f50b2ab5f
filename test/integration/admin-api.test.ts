import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'admin-test-key-0123456789';
const TOKEN = 'admin-token-for-tests-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('the admin API and readiness', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let edge: TestNode;
  let publisher: Publisher;
  let viewer: ReturnType<typeof watch>;

  before(async () => {
    nats = await startNats();
    const streams = [
      { name: 'show', key: KEY },
      { name: 'quiet', key: 'quiet-key-0123456789abc' },
    ];
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams, admin: { token: TOKEN }, cluster: { nodeId: 'origin-1', edgeHeartbeatMs: 300 } });
    edge = await startTestNode(['edge'], nats.url, { streams, cluster: { nodeId: 'edge-2', edgeHeartbeatMs: 300 } });
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
    viewer = watch(`${relay.wsUrl('show')}?routed=1`);
    await waitFor('frames at the viewer', () => viewer.record.fragments.length > 10, 30_000);
  });

  after(async () => {
    viewer?.ws.close();
    await publisher?.stop();
    await edge?.node.close();
    await relay?.node.close();
    await nats?.cleanup();
  });

  const get = (path: string, headers: Record<string, string> = auth, base = relay.http) => fetch(`${base}${path}`, { headers });
  const post = (path: string, body: string, contentType = 'application/json') =>
    fetch(`${relay.http}${path}`, { method: 'POST', headers: { ...auth, 'content-type': contentType }, body });

  test('refuses a missing token, a wrong one, and answers ADMIN_DISABLED on a node without one', async () => {
    const missing = await get('/admin/api/cluster', {});
    assert.equal(missing.status, 401);
    assert.equal((await missing.json()).code, 'AUTH_REQUIRED');
    const wrong = await get('/admin/api/cluster', { authorization: 'Bearer admin-token-for-tests-0123456788' });
    assert.equal(wrong.status, 403);
    assert.equal((await wrong.json()).code, 'ADMIN_TOKEN_INVALID');
    const short = await get('/admin/api/streams', { authorization: 'Bearer x' });
    assert.equal(short.status, 403);
    const disabled = await get('/admin/api/cluster', auth, edge.http);
    assert.equal(disabled.status, 503);
    assert.equal((await disabled.json()).code, 'ADMIN_DISABLED');
  });

  test('shows each stream with its owner origin, lease token, renditions and viewers per edge', async () => {
    const token = relay.node.origin!.liveStreams()[0]!.token;
    const cluster = await waitFor(
      'both nodes and the live stream in the view',
      async () => {
        const c = await (await get('/admin/api/cluster')).json();
        const show = c.streams.find((s: { name: string }) => s.name === 'show');
        return c.nodes.length === 2 && show.viewers.total === 1 && show.framesPerSecond > 0 ? c : undefined;
      },
      10_000,
      200,
    );
    assert.deepEqual(
      cluster.nodes.map((n: { id: string; roles: string[] }) => [n.id, n.roles.join('+')]),
      [
        ['edge-2', 'edge'],
        ['origin-1', 'origin+edge'],
      ],
    );
    const show = cluster.streams.find((s: { name: string }) => s.name === 'show');
    assert.equal(show.live, true);
    assert.equal(show.origin, 'origin-1');
    assert.equal(show.leaseToken, token);
    assert.equal(show.protocol, 'rtmp');
    assert.deepEqual(
      show.renditions.map((r: { name: string }) => r.name),
      ['source'],
    );
    assert.deepEqual(show.viewers.byEdge, { 'origin-1': { ws: 1, webrtc: 0, hls: 0 } });
    assert.ok(['origin-1', 'edge-2'].includes(show.placedOn));
    const quiet = cluster.streams.find((s: { name: string }) => s.name === 'quiet');
    assert.deepEqual([quiet.live, quiet.origin, quiet.viewers.total], [false, null, 0]);
    assert.deepEqual(cluster.ring.members.map((m: { id: string }) => m.id).sort(), ['edge-2', 'origin-1']);
    assert.deepEqual(Object.keys(cluster.ring.placements).sort(), ['quiet', 'show']);
    const one = await (await get('/admin/api/streams/show')).json();
    assert.equal(one.leaseToken, token);
    assert.equal((await get('/admin/api/streams/nope')).status, 404);
    assert.equal((await get('/admin/api/streams/a.b')).status, 400);
  });

  test('polling the cluster buckets every heartbeat and answering admin reads leaves no consumer on NATS', async () => {
    // Both nodes poll the edge bucket every 300 ms; each admin view reads the node and lease buckets too.
    for (let i = 0; i < 10; i++) assert.equal((await get('/admin/api/cluster')).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      for (const bucket of ['KV_relay_edges', 'KV_relay_nodes', 'KV_relay_leases']) {
        const consumers = await jsm.consumers.list(bucket).next();
        assert.deepEqual(
          consumers.map((c) => c.name),
          [],
          `${bucket} keeps no consumer`,
        );
      }
    } finally {
      await nc.close();
    }
  });

  test('validates request bodies against the schema, with stable codes', async () => {
    for (const [body, type, status, code] of [
      [JSON.stringify({ reason: 5 }), 'application/json', 400, 'BODY_INVALID'],
      [JSON.stringify({ reason: 'x', extra: true }), 'application/json', 400, 'BODY_INVALID'],
      [JSON.stringify({ reason: 'x'.repeat(201) }), 'application/json', 400, 'BODY_INVALID'],
      ['{not json', 'application/json', 400, 'BODY_INVALID'],
      ['', 'application/json', 400, 'BODY_INVALID'],
      ['reason=x', 'application/x-www-form-urlencoded', 415, 'CONTENT_TYPE_INVALID'],
      [JSON.stringify({ reason: 'x'.repeat(70_000) }), 'application/json', 413, 'BODY_TOO_LARGE'],
    ] as const) {
      const res = await post('/admin/api/streams/show/end', body, type);
      const json = await res.json();
      assert.equal(res.status, status, `${body.slice(0, 40)}: ${JSON.stringify(json)}`);
      assert.equal(json.code, code);
    }
    assert.equal(relay.node.origin!.liveStreams().length, 1, 'nothing was ended by a refused request');
    const offline = await post('/admin/api/streams/quiet/end', '{}');
    assert.equal(offline.status, 404);
    assert.equal((await offline.json()).code, 'STREAM_OFFLINE');
  });

  test('recordings: none in the store; a recording start with no recorder anywhere: RECORDING_UNAVAILABLE; a stop: RECORDING_NOT_ACTIVE', async () => {
    const list = await get('/admin/api/recordings');
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { recordings: [] });
    const one = await get('/admin/api/recordings/show-20261206-100000-t1');
    assert.equal(one.status, 404);
    assert.equal((await one.json()).code, 'RECORDING_NOT_FOUND');
    const start = await post('/admin/api/streams/show/recording/start', '{}');
    assert.equal(start.status, 503);
    assert.equal((await start.json()).code, 'RECORDING_UNAVAILABLE');
    const stop = await post('/admin/api/streams/show/recording/stop', '{}');
    assert.equal(stop.status, 409);
    assert.equal((await stop.json()).code, 'RECORDING_NOT_ACTIVE');
  });

  test('the OpenAPI document is valid and describes every admin route', async () => {
    const res = await get('/admin/api/openapi.json', {});
    assert.equal(res.status, 200, 'public: it holds no secret');
    const doc = await res.json();
    await SwaggerParser.validate(structuredClone(doc));
    assert.deepEqual(Object.keys(doc.paths).sort(), [
      '/admin/api/cluster',
      '/admin/api/nodes',
      '/admin/api/recordings',
      '/admin/api/recordings/{id}',
      '/admin/api/recordings/{id}/file.mp4',
      '/admin/api/recordings/{id}/hls/{*}',
      '/admin/api/ring',
      '/admin/api/streams',
      '/admin/api/streams/{stream}',
      '/admin/api/streams/{stream}/end',
      '/admin/api/streams/{stream}/forwards',
      '/admin/api/streams/{stream}/forwards/{id}',
      '/admin/api/streams/{stream}/recording/start',
      '/admin/api/streams/{stream}/recording/stop',
    ]);
    const end = doc.paths['/admin/api/streams/{stream}/end'].post;
    assert.equal(end.requestBody.content['application/json'].schema.properties.reason.maxLength, 200);
  });

  test('ending a stream disconnects its publisher, viewers see it end, and its lease is released', async () => {
    const res = await post('/admin/api/streams/show/end', JSON.stringify({ reason: 'test over' }));
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { stream: 'show', ended: true, origin: 'origin-1' });
    await waitFor('the viewer to see the end', () => viewer.record.controls.some((c) => c.type === 'status' && c.state === 'ended'), 10_000);
    const status = await Promise.race([publisher.exited, new Promise((r) => setTimeout(() => r('running'), 10_000))]);
    assert.notEqual(status, 'running', 'the publisher was disconnected');
    await waitFor(
      'the stream offline in the view',
      async () => {
        const show = await (await get('/admin/api/streams/show')).json();
        return show.live === false;
      },
      5_000,
      200,
    );
    assert.ok(relay.logs().includes('STREAM_ENDED_BY_ADMIN'), 'the origin logged why');
  });

  test('/readyz is ready with NATS up, and not ready (503, saying which check) once NATS is gone', async () => {
    const ready = await get('/readyz', {});
    assert.equal(ready.status, 200);
    const body = await ready.json();
    assert.equal(body.status, 'ready');
    for (const c of ['http', 'rtmp', 'natsPublish', 'natsCluster', 'natsEdge', 'leaseBucket', 'edgeBucket', 'nodeBucket'])
      assert.equal(body.checks[c]?.ok, true, c);
    await nats.stop();
    const down = await waitFor(
      'readiness to drop',
      async () => {
        const r = await get('/readyz', {});
        return r.status === 503 ? r.json() : undefined;
      },
      10_000,
      200,
    );
    assert.equal(down.checks.natsCluster.ok, false);
    assert.equal((await get('/healthz', {})).status, 200, 'still alive');
  });
});
