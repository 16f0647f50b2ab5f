import { join } from 'node:path';
import type { Logger } from '../server/core/log.ts';
import { NatsServerProcess } from './nats-server-process.ts';

export interface NatsClusterNode {
  name: string;
  clientPort: number;
  clusterPort: number;
  server: NatsServerProcess;
}

/**
 * A local JetStream cluster of nats-server child processes on loopback: for
 * scripts/cluster and the cluster tests. Ports are given (routes must be known
 * up front); each node keeps its store under `dir/<name>`.
 */
export function natsCluster(dir: string, ports: { client: number; cluster: number }[], log?: Logger): NatsClusterNode[] {
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(',');
  return ports.map((p, i) => {
    const name = `n${i + 1}`;
    return {
      name,
      clientPort: p.client,
      clusterPort: p.cluster,
      server: new NatsServerProcess({
        storeDir: join(dir, name),
        port: p.client,
        log,
        args: ['-n', name, '--cluster_name', 'relay', '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', routes],
      }),
    };
  });
}

export const clusterUrl = (nodes: NatsClusterNode[]) => nodes.map((n) => `nats://127.0.0.1:${n.clientPort}`).join(',');
