/**
 * Shards or one JetStream stream per live stream? Measures on a real 3-node NATS cluster
 * (loopback, replicas 3, memory storage, as the cluster runs frames) what each design costs:
 *
 * - per live stream: creating its frame stream when it goes live (the time a publisher waits
 *   before its first frame can be stored), a Raft group per live stream on every node, and the
 *   nats-servers' memory with that many streams;
 * - shards: a fixed number of streams made once at start.
 *
 *   node --import tsx scripts/bench-shard-layout.ts [--streams 200]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { clusterUrl, natsCluster } from '../node/nats-cluster.ts';
import { freePort } from '../test/helpers/ports.ts';

const { values } = parseArgs({ options: { streams: { type: 'string', default: '200' } } });
const count = Number(values.streams);

const rssMb = (pid: number | undefined) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const dir = mkdtempSync(join(tmpdir(), 'relay-shard-bench-'));
const ports = [];
for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), cluster: await freePort() });
const nodes = natsCluster(dir, ports);
await Promise.all(nodes.map((n) => n.server.start()));
const nc = await connect({ servers: clusterUrl(nodes) });
try {
  // The cluster elects its meta leader first.
  let jsm: JetStreamManager | undefined;
  for (let i = 0; !jsm; i++) {
    jsm = await jetstreamManager(nc, { timeout: 30_000 }).catch((err: unknown) => {
      if (i > 50) throw err;
      return new Promise<undefined>((r) => setTimeout(r, 200));
    });
  }
  const base = nodes.map((n) => rssMb(n.server.pid));
  const config = (name: string) => ({
    name,
    subjects: [`bench_${name}.>`],
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    storage: StorageType.Memory,
    num_replicas: 3,
    max_age: 30_000_000_000,
    max_bytes: 64 * 1024 * 1024,
    allow_direct: true,
  });
  const created: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await jsm.streams.add(config(`LIVE_${i}`));
    created.push(performance.now() - t);
  }
  await new Promise((r) => setTimeout(r, 2000));
  const withStreams = nodes.map((n) => rssMb(n.server.pid));
  // Failover: every leader on one node steps down at once (as when it dies): how long until all have a leader again.
  const infos = await Promise.all(Array.from({ length: count }, (_, i) => jsm.streams.info(`LIVE_${i}`)));
  const victim = nodes[0]!.name;
  const led = infos.filter((s) => s.cluster?.leader === victim).map((s) => s.config.name);
  const t0 = performance.now();
  // The answers can be slow to come with many at once; re-election is what is timed.
  await Promise.all(led.map((name) => nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${name}`, undefined, { timeout: 60_000 }).catch(() => undefined)));
  for (;;) {
    const now = await Promise.all(led.map((name) => jsm.streams.info(name).catch(() => undefined)));
    if (now.every((s) => s?.cluster?.leader && s.cluster.leader !== victim)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const failoverMs = performance.now() - t0;
  const deleted: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await jsm.streams.delete(`LIVE_${i}`);
    deleted.push(performance.now() - t);
  }
  console.log(`# One JetStream stream per live stream, ${count} live streams, 3 nodes, replicas 3, memory storage`);
  console.log(`| measure | figure |`);
  console.log(`|---|---|`);
  console.log(
    `| creating a live stream's frame stream (the wait at publish) | p50 ${pct(created, 50).toFixed(1)} ms, p99 ${pct(created, 99).toFixed(1)} ms, max ${Math.max(...created).toFixed(1)} ms |`,
  );
  console.log(`| deleting it (after retention) | p50 ${pct(deleted, 50).toFixed(1)} ms, p99 ${pct(deleted, 99).toFixed(1)} ms |`);
  console.log(`| Raft groups per node | ${count} (one per live stream, each on all 3 nodes) against 6 for six shards |`);
  console.log(
    `| nats-server memory, empty streams | ${withStreams.map((m, i) => `+${(m - base[i]!).toFixed(1)} MB`).join(' / ')} for ${count} (${(((withStreams.reduce((a, b) => a + b) - base.reduce((a, b) => a + b)) / 3 / count) * 1024).toFixed(0)} KB per stream per node) |`,
  );
  console.log(`| failover: ${led.length} leaders of one node stepping down at once, until all re-elected | ${failoverMs.toFixed(0)} ms |`);
} finally {
  await nc.close();
  await Promise.all(nodes.map((n) => n.server.stop()));
  rmSync(dir, { recursive: true, force: true });
}
