import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterUrl, natsCluster, type NatsClusterNode } from '../../node/nats-cluster.ts';
import { freePort } from './ports.ts';

/** A real 3-node nats-server JetStream cluster on random loopback ports, with temporary stores. */
export async function startNatsCluster(size = 3): Promise<{ nodes: NatsClusterNode[]; url: string; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-nats-cluster-'));
  const ports = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort() });
  const nodes = natsCluster(dir, ports);
  await Promise.all(nodes.map((n) => n.server.start()));
  return {
    nodes,
    url: clusterUrl(nodes),
    async cleanup() {
      await Promise.all(nodes.map((n) => n.server.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
