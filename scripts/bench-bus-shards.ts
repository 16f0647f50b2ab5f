/**
 * The bus over shards (issue #23): the same load of renditions through one nats-server (one
 * frame stream) and through a 3-node cluster (bus.shards 6, replicas 3, the shards' leaders
 * spread by the origins' own balancer), with each nats-server's CPU measured:
 *  - renditions per NATS core, for 1 node and for 3 nodes;
 *  - on 3 nodes, each node's CPU against an even share (target: within 1.5x).
 * The relay's own bus code publishes and consumes (scripts/lib/bus-load.ts: the origin's
 * FramePublisher, the edge's StreamFeed), one origin and one edge process.
 *
 *   node --import tsx scripts/bench-bus-shards.ts [--renditions 100] [--seconds 20]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ShardLeaderBalancer } from '../server/core/bus/shard-leaders.ts';
import { BusLayout } from '../server/core/bus/shards.ts';
import { createLogger } from '../server/core/log.ts';
import { startNats } from '../test/helpers/nats.ts';
import { startNatsCluster } from '../test/helpers/nats-cluster.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { machinePercent, machineTicks, processStat, round } from './lib/figures.ts';
import { reportingChild } from './lib/reporting-child.ts';

const { values } = parseArgs({ options: { renditions: { type: 'string', default: '100' }, seconds: { type: 'string', default: '20' } } });
const renditions = Number(values.renditions);
const seconds = Number(values.seconds);
const KBPS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoadReport {
  frames: number;
  failed: number;
  streams: number;
  p99Ms: number | null;
  cpuSeconds: number;
}

interface Setup {
  label: string;
  nodes: number;
  shards: number;
  replicas: number;
}

/** How many of the shards each node leads. */
async function leadersPerNode(nc: NatsConnection, shards: number): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const out: Record<string, number> = {};
  for (const s of new BusLayout({ streamName: 'RELAY_FRAMES', subjectPrefix: 'relay', shards }).shards) {
    const leader = (await jsm.streams.info(s.jsStream)).cluster?.leader ?? 'n1';
    out[leader] = (out[leader] ?? 0) + 1;
  }
  return out;
}

async function measure(setup: Setup) {
  const single = setup.nodes === 1 ? await startNats() : undefined;
  const cluster = setup.nodes > 1 ? await startNatsCluster(setup.nodes) : undefined;
  const url = single?.url ?? cluster!.url;
  const pids = single ? [{ name: 'n1', pid: single.pid! }] : cluster!.nodes.map((n) => ({ name: n.name, pid: n.server.pid! }));
  const env = { RELAY_BUS_SHARDS: String(setup.shards), RELAY_BUS_REPLICAS: String(setup.replicas), RELAY_BUS_STORAGE: 'memory' };
  const origin = reportingChild<LoadReport>('./bus-load.ts', ['origin', url, String(KBPS)], env);
  const edge = reportingChild<LoadReport>('./bus-load.ts', ['edge', url, String(KBPS)], env);
  const nc = await connect({ servers: url });
  try {
    await waitFor('the bus processes to report', () => origin.report && edge.report, 60_000, 100);
    // The origins' balancer, as a relay origin runs it at start (the shards idle), until the leaders are as even as they get.
    let moves = 0;
    if (setup.shards > 1 && setup.replicas > 1) {
      const balancer = new ShardLeaderBalancer(
        nc,
        new BusLayout({ streamName: 'RELAY_FRAMES', subjectPrefix: 'relay', shards: setup.shards }),
        createLogger({ level: 'silent', pretty: false }),
        0,
      );
      for (let i = 0; i < 30; i++) {
        if (!(await balancer.check())) break;
        moves++;
        await sleep(1500);
      }
    }
    const names = Array.from({ length: renditions }, (_, i) => `b${i}`);
    edge.send({ streams: names });
    await waitFor(`${renditions} consumers`, () => edge.report!.streams >= renditions, 60_000, 100);
    origin.send({ streams: names });
    await sleep(5000);
    [origin, edge].forEach((p) => p.send({ mark: true }));
    await Promise.all([origin, edge].map((p) => p.next()));
    const o0 = origin.report!;
    const failed0 = origin.report!.failed + edge.report!.failed;
    const n0 = pids.map((p) => processStat(p.pid).cpu);
    const m0 = machineTicks();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    await Promise.all([origin, edge].map((p) => p.next()));
    const dt = (performance.now() - t0) / 1000;
    const nodeCpu = pids.map((p, i) => round(((processStat(p.pid).cpu - n0[i]!) / dt) * 100));
    const total = nodeCpu.reduce((a, b) => a + b, 0);
    const even = total / pids.length;
    const row = {
      ...setup,
      renditions,
      moves,
      framesPerSecond: Math.round((origin.report!.frames - o0.frames) / dt),
      failed: origin.report!.failed + edge.report!.failed - failed0,
      p99Ms: round(edge.report!.p99Ms ?? NaN, 1),
      leaders: await leadersPerNode(nc, setup.shards),
      nodeCpuPercent: Object.fromEntries(pids.map((p, i) => [p.name, nodeCpu[i]!])),
      natsCpuPercent: round(total),
      busiestOverEven: round(Math.max(...nodeCpu) / even, 2),
      renditionsPerNatsCore: Math.round(renditions / (total / 100)),
      machineCpuPercent: machinePercent(m0, machineTicks()),
    };
    process.stderr.write(`${JSON.stringify(row)}\n`);
    return row;
  } finally {
    await nc.close();
    origin.stop();
    edge.stop();
    await single?.cleanup();
    await cluster?.cleanup();
  }
}

const rows = [];
for (const setup of [
  { label: '1 node, one frame stream', nodes: 1, shards: 1, replicas: 1 },
  { label: '3 nodes, 6 shards, replicas 3', nodes: 3, shards: 6, replicas: 3 },
])
  rows.push(await measure(setup));

const lines = [
  `<!-- node --import tsx scripts/bench-bus-shards.ts --renditions ${renditions} --seconds ${seconds} (${new Date().toISOString().slice(0, 10)}; all processes on this machine's 2 shared cores) -->`,
  `# The bus over shards: ${renditions} renditions of ${KBPS} kbit/s (30 fps video, AAC), memory storage`,
  '',
  '| setup | nats-server CPU per node | NATS CPU in all | busiest node / even share | renditions per NATS core | p99 publish -> edge | frames failed | machine CPU |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.label} (shards led: ${Object.entries(r.leaders)
        .map(([n, c]) => `${n} ${c}`)
        .join(', ')}${r.moves ? `, after ${r.moves} moves` : ''}) | ${Object.entries(r.nodeCpuPercent)
        .map(([n, c]) => `${n} ${c}%`)
        .join(', ')} | ${r.natsCpuPercent}% | ${r.busiestOverEven}x | ${r.renditionsPerNatsCore} | ${r.p99Ms} ms | ${r.failed} | ${r.machineCpuPercent}% |`,
  ),
];
const out = new URL('../bench-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
writeFileSync(`${out}bus-shards.md`, lines.join('\n') + '\n');
writeFileSync(`${out}bus-shards.json`, JSON.stringify(rows, null, 2) + '\n');
process.stdout.write(lines.join('\n') + '\n');
