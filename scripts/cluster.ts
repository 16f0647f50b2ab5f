/**
 * A local cluster on loopback with one command: 3 nats-server nodes (JetStream,
 * replicas 3), 2 origins and 3 edges, each a process of its own. State and logs
 * live in ./data/cluster; `stop` ends every process it started.
 *
 *   scripts/cluster start     # prints the OBS servers and watch URLs
 *   scripts/cluster stop
 *   scripts/cluster status
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterUrl, natsCluster } from '../node/nats-cluster.ts';
import { DEMO_STREAM, demoStreamKey, localAdminToken } from '../node/demo-key.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DIR = join(ROOT, 'data', 'cluster');
const PIDS = join(DIR, 'pids.json');
const NATS_PORTS = [
  { client: 4231, cluster: 6231 },
  { client: 4232, cluster: 6232 },
  { client: 4233, cluster: 6233 },
];
const ORIGINS = [
  { id: 'origin-1', rtmp: 1935, http: 8081, srt: 8890 },
  { id: 'origin-2', rtmp: 1936, http: 8082, srt: 8891 },
];
const EDGES = [
  { id: 'edge-1', http: 8091 },
  { id: 'edge-2', http: 8092 },
  { id: 'edge-3', http: 8093 },
];

interface Started {
  name: string;
  pid: number;
  log: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readPids(): Started[] {
  return existsSync(PIDS) ? (JSON.parse(readFileSync(PIDS, 'utf8')) as Started[]) : [];
}

function launch(name: string, command: string, args: string[], env: Record<string, string> = {}): Started {
  const log = join(DIR, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  return { name, pid: child.pid!, log };
}

async function waitHealthy(url: string, name: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (
      await fetch(url).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name} did not become healthy; see ${join(DIR, `${name}.log`)}`);
}

async function start(): Promise<void> {
  if (readPids().some((p) => alive(p.pid))) throw new Error('a cluster is already running (scripts/cluster stop)');
  mkdirSync(DIR, { recursive: true });
  const started: Started[] = [];
  const save = () => writeFileSync(PIDS, JSON.stringify(started, null, 2));
  const nodes = natsCluster(join(DIR, 'nats'), NATS_PORTS);
  for (const node of nodes) {
    // Detached processes of their own, so that the cluster outlives this command.
    const args = [
      '-js',
      '-a',
      '127.0.0.1',
      '-p',
      String(node.clientPort),
      '-sd',
      join(DIR, 'nats', node.name),
      '-n',
      node.name,
      '--cluster_name',
      'relay',
      '--cluster',
      `nats://127.0.0.1:${node.clusterPort}`,
      '--routes',
      NATS_PORTS.map((p) => `nats://127.0.0.1:${p.cluster}`).join(','),
    ];
    started.push(launch(`nats-${node.name}`, 'nats-server', args));
  }
  save();
  const natsUrl = clusterUrl(nodes);
  const demo = demoStreamKey(join(ROOT, 'data'));
  const admin = process.env.RELAY_ADMIN_TOKEN ? { key: process.env.RELAY_ADMIN_TOKEN, file: 'RELAY_ADMIN_TOKEN' } : localAdminToken(join(ROOT, 'data'));
  const common = {
    NATS_URL: natsUrl,
    RELAY_STREAMS: process.env.RELAY_STREAMS ?? JSON.stringify([{ name: DEMO_STREAM, key: demo.key }]),
    RELAY_BUS_REPLICAS: '3',
    RELAY_BUS_SHARDS: '6',
    RELAY_CLUSTER_KV_REPLICAS: '3',
    RELAY_NATS_CONNECT_TIMEOUT_MS: '60000',
    RELAY_HTTP_HOST: '127.0.0.1',
    RELAY_RTMP_HOST: '127.0.0.1',
    RELAY_SRT_HOST: '127.0.0.1',
    RELAY_LOG_PRETTY: 'false',
    RELAY_ADMIN_TOKEN: admin.key,
  };
  for (const o of ORIGINS) {
    started.push(
      launch(o.id, process.execPath, ['--import', 'tsx', 'node/cli.ts', 'origin'], {
        ...common,
        RELAY_CLUSTER_NODE_ID: o.id,
        RELAY_RTMP_PORT: String(o.rtmp),
        RELAY_SRT_PORT: String(o.srt),
        RELAY_HTTP_PORT: String(o.http),
      }),
    );
    save();
  }
  for (const e of EDGES) {
    started.push(
      launch(e.id, process.execPath, ['--import', 'tsx', 'node/cli.ts', 'edge'], {
        ...common,
        RELAY_CLUSTER_NODE_ID: e.id,
        RELAY_HTTP_PORT: String(e.http),
      }),
    );
    save();
  }
  await Promise.all([...ORIGINS, ...EDGES].map((n) => waitHealthy(`http://127.0.0.1:${n.http}/healthz`, n.id)));
  process.stdout.write(
    [
      '',
      `Cluster running: NATS ${natsUrl}`,
      '',
      'OBS (either origin; a TCP balancer in front of both would do the same):',
      ...ORIGINS.map((o) => `  Server: rtmp://127.0.0.1:${o.rtmp}/live   (${o.id})`),
      `  Stream Key: ${demo.key}   (stream "${DEMO_STREAM}")`,
      `  or SRT: ${ORIGINS.map((o) => `srt://127.0.0.1:${o.srt}?streamid=${demo.key}`).join('  or  ')}`,
      '',
      'Watch on any edge (it sends you to the edge that serves the stream):',
      ...EDGES.map((e) => `  http://127.0.0.1:${e.http}/watch/${DEMO_STREAM}   (${e.id})`),
      '',
      `Dashboard (any node): http://127.0.0.1:${EDGES[0]!.http}/admin   token in ${admin.file}`,
      `Route of a stream: curl http://127.0.0.1:${EDGES[0]!.http}/api/route/${DEMO_STREAM}`,
      `Logs: ${DIR}/*.log     Stop: scripts/cluster stop`,
      '',
    ].join('\n'),
  );
}

async function stop(): Promise<void> {
  const running = readPids();
  // Relays first (they drain and release leases), NATS last.
  for (const group of [running.filter((p) => !p.name.startsWith('nats-')), running.filter((p) => p.name.startsWith('nats-'))]) {
    for (const p of group) if (alive(p.pid)) process.kill(p.pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (group.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const p of group) if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
  }
  rmSync(PIDS, { force: true });
  process.stdout.write(`stopped ${running.length} processes\n`);
}

function status(): void {
  const running = readPids();
  if (running.length === 0) process.stdout.write('no cluster started (scripts/cluster start)\n');
  for (const p of running) process.stdout.write(`${p.name.padEnd(10)} pid ${p.pid} ${alive(p.pid) ? 'running' : 'stopped'}   ${p.log}\n`);
}

const command = process.argv[2] ?? 'status';
const commands: Record<string, () => void | Promise<void>> = { start, stop, status };
if (!commands[command]) {
  process.stderr.write('usage: scripts/cluster start|stop|status\n');
  process.exit(2);
}
Promise.resolve(commands[command]()).catch((err: Error) => {
  process.stderr.write(`cluster: ${err.message}\n`);
  process.exit(1);
});
