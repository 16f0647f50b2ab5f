import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { BusLayout } from '../../server/core/bus/shards.ts';
import { startNatsCluster } from '../helpers/nats-cluster.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const SHARDS = 6;
const layout = new BusLayout({ streamName: 'RELAY_FRAMES', subjectPrefix: 'relay', shards: SHARDS });
// Six live streams in six different shards (the names' hashes decide; the same every run).
const names: string[] = [];
for (let i = 0; names.length < SHARDS; i++) {
  const name = `cam${i}`;
  if (!names.some((n) => layout.shardOf(n) === layout.shardOf(name))) names.push(name);
}
const keyOf = (name: string) => `${name}-shard-test-key-0123456789`;

describe('frames over six shards on a 3-node NATS cluster (replicas 3)', { timeout: 240_000 }, () => {
  let cluster: Awaited<ReturnType<typeof startNatsCluster>>;
  let nc: NatsConnection;
  let origin: RelayProcess;
  let edge: RelayProcess;
  const publishers: Publisher[] = [];
  let spread: Map<string, number>;
  const viewers: ReturnType<typeof watch>[] = [];

  const leaders = async (): Promise<Map<string, string | undefined>> => {
    const jsm = await jetstreamManager(nc);
    const out = new Map<string, string | undefined>();
    for (const s of layout.shards) out.set(s.jsStream, (await jsm.streams.info(s.jsStream)).cluster?.leader);
    return out;
  };

  before(async () => {
    cluster = await startNatsCluster(3);
    // The relays reach the cluster through n2 and n3: n1 is the node killed below, and a client connected to it
    // would pause everything it carries while it reconnects, whatever the shards.
    const url = cluster.nodes
      .slice(1)
      .map((n) => `nats://127.0.0.1:${n.clientPort}`)
      .join(',');
    nc = await connect({ servers: url });
    const env = (id: string) => ({
      NATS_URL: url,
      RELAY_STREAMS: JSON.stringify(names.map((name) => ({ name, key: keyOf(name) }))),
      RELAY_BUS_SHARDS: String(SHARDS),
      RELAY_BUS_REPLICAS: '3',
      RELAY_BUS_BALANCE_LEADERS_MS: '1000',
      RELAY_CLUSTER_KV_REPLICAS: '3',
      RELAY_CLUSTER_NODE_ID: id,
      RELAY_NATS_CONNECT_TIMEOUT_MS: '30000',
    });
    origin = await startRelay('origin', env('origin-1'));
    edge = await startRelay('edge', env('edge-1'));
    // As a cluster starts: the origin spreads the shards' leaders while they are idle (a busy shard is moved only
    // after a minute uneven), then the streams go live.
    spread = await waitFor(
      'leaders spread two per node',
      async () => {
        const counts = new Map<string, number>();
        for (const leader of (await leaders()).values()) if (leader) counts.set(leader, (counts.get(leader) ?? 0) + 1);
        return counts.size === 3 && [...counts.values()].every((n) => n === 2) ? counts : undefined;
      },
      60_000,
      250,
    );
    for (const name of names) publishers.push(startPublisher({ url: origin.rtmpUrl(keyOf(name)), file: 'test/fixtures/obs-like-2s.flv' }));
    for (const name of names) viewers.push(watch(`ws://127.0.0.1:${edge.httpPort}/ws/${name}`));
    await waitFor('frames flowing on every stream', () => viewers.every((v) => v.record.fragments.length > 60), 60_000);
  });

  after(async () => {
    for (const v of viewers) v.close();
    await Promise.all(publishers.map((p) => p.stop()));
    await edge?.stop();
    await origin?.stop();
    await nc?.close();
    await cluster?.cleanup();
  });

  test("each stream's frames are in its own shard, and the shards' leaders spread over the three nodes (two each, moved there by the origin)", async () => {
    const jsm = await jetstreamManager(nc);
    for (const name of names) {
      const shard = layout.shardOf(name);
      const info = await jsm.streams.info(shard.jsStream, { subjects_filter: `${shard.prefix}.${name}.>` });
      assert.ok(Object.keys(info.state.subjects ?? {}).length > 0, `${name}'s frames in ${shard.jsStream}`);
      assert.deepEqual(info.config.subjects, [shard.wildcard]);
    }
    // The origin asked shards to change leader while one node led two more than another: two each, and still so with the
    // streams live.
    const now = new Map<string, number>();
    for (const leader of (await leaders()).values()) if (leader) now.set(leader, (now.get(leader) ?? 0) + 1);
    assert.deepEqual([...now.values()], [2, 2, 2], JSON.stringify([...now]));
    const moves = origin
      .output()
      .split('\n')
      .filter((l) => l.includes('frame shard asked to change leader')).length;
    process.stderr.write(`# shard leaders: ${[...spread].map(([n, c]) => `${n} ${c}`).join(', ')}, after ${moves} moves\n`);
  });

  test("killing a node that leads two shards pauses only those shards' streams (the edge's consumers sit on their shards' leaders); the other four keep flowing", async () => {
    const victim = cluster.nodes[0]!;
    const led = await leaders();
    const hit = names.filter((name) => led.get(layout.shardOf(name).jsStream) === victim.name);
    assert.ok(hit.length > 0 && hit.length < names.length, `${victim.name} leads the shards of ${hit.join(', ')}`);
    // The edge's consumers follow their shard's leader (the origin moved leaders above): on the same node, a consumer
    // shares its shard's fate only.
    await waitFor(
      "each edge consumer on its shard leader's node",
      async () => {
        const jsm = await jetstreamManager(nc);
        for (const shard of new Set(names.map((n) => layout.shardOf(n)))) {
          for await (const c of jsm.consumers.list(shard.jsStream)) if (c.cluster?.leader !== led.get(shard.jsStream)) return false;
        }
        return true;
      },
      30_000,
      500,
    );
    const counts = viewers.map((v) => v.record.fragments.length);
    const killedAt = Date.now();
    await victim.server.kill();
    await waitFor('every stream flowing again', () => viewers.every((v, i) => v.record.fragments.length > counts[i]! + 150), 60_000).catch((err: Error) => {
      // Which streams, and what the origin and the edge said since the kill.
      const since = (r: RelayProcess) =>
        r
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { time: number; level: number; msg: string; stream?: string; err?: string })
          .filter((o) => o.time >= killedAt && o.level >= 40 && !/lease renewal failed|heartbeat failed/.test(o.msg))
          .map((o) => `+${o.time - killedAt} ${o.msg} ${o.stream ?? ''} ${o.err ?? ''}`);
      const flows = names.map((n, i) => `${n}: ${viewers[i]!.record.fragments.length - counts[i]!}`).join(', ');
      throw new Error(`${err.message}; fragments since the kill: ${flows}\norigin:\n${since(origin).join('\n')}\nedge:\n${since(edge).join('\n')}`);
    });
    // The longest gap between fragments from the kill on, per stream.
    const gaps = viewers.map((v) => {
      const times = [killedAt, ...v.record.fragments.filter((f) => f.at >= killedAt).map((f) => f.at)];
      return Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    });
    const report = names.map((n, i) => `${n}${hit.includes(n) ? ' (its leader killed)' : ''} ${gaps[i]} ms`).join(', ');
    process.stderr.write(`# longest pause per stream after killing ${victim.name}: ${report}\n`);
    for (const [i, name] of names.entries()) {
      assert.equal(viewers[i]!.record.closed, undefined, `${name}'s viewer stayed connected`);
      // A fragment per frame at 30 fps: an untouched shard's stream goes on as before (a busy machine's hiccup aside).
      if (!hit.includes(name)) assert.ok(gaps[i]! < 1000, report);
    }
    for (const p of publishers) assert.equal(p.process.exitCode, null, 'every publisher stayed connected');
  });
});
