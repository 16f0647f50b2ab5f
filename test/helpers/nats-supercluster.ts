import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsServerProcess } from '../../node/nats-server-process.ts';
import { freePort } from './ports.ts';
import { startProxy } from './tcp-proxy.ts';

export interface Region {
  name: string;
  server: NatsServerProcess;
  url: string;
  /** The region's gateway, as the other regions reach it: a TCP proxy the test can cut. */
  gateway: Awaited<ReturnType<typeof startProxy>>;
}

/**
 * A NATS supercluster on loopback: one single-node JetStream cluster per region, named as the
 * region, joined by gateways. Each region's gateway is reached only through a TCP proxy (also
 * what it advertises), so that a test can cut a region off and bring it back.
 */
export async function startSupercluster(names: string[]): Promise<{ regions: Region[]; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-supercluster-'));
  const ports = await Promise.all(names.map(async () => ({ client: await freePort(), cluster: await freePort(), gateway: await freePort() })));
  const proxies = await Promise.all(ports.map((p) => startProxy(p.gateway)));
  const gateways = names.map((n, i) => `{ name: "${n}", urls: ["nats://127.0.0.1:${proxies[i]!.port}"] }`).join(', ');
  const regions = names.map((name, i): Region => {
    const conf = join(dir, `${name}.conf`);
    const p = ports[i]!;
    writeFileSync(
      conf,
      [
        `server_name: "${name}-1"`,
        'jetstream {}',
        // A one-node cluster (a JetStream cluster needs routes: its own, here).
        `cluster { name: "${name}", listen: "127.0.0.1:${p.cluster}", routes: ["nats://127.0.0.1:${p.cluster}"] }`,
        `gateway { name: "${name}", listen: "127.0.0.1:${p.gateway}", advertise: "127.0.0.1:${proxies[i]!.port}", gateways: [${gateways}] }`,
      ].join('\n') + '\n',
    );
    const server = new NatsServerProcess({ storeDir: join(dir, name), port: p.client, args: ['-c', conf] });
    return { name, server, url: `nats://127.0.0.1:${p.client}`, gateway: proxies[i]! };
  });
  await Promise.all(regions.map((r) => r.server.start()));
  return {
    regions,
    async cleanup() {
      await Promise.all(regions.map((r) => r.server.stop()));
      await Promise.all(proxies.map((p) => p.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
