import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsCluster } from '../helpers/nats-cluster.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'nats-node-loss-key-0123456';

/** A fresh 3-node cluster (replicas 3), an origin, an edge, a publisher and a viewer. */
function scenario(pickVictim: (leader: string, names: string[]) => string, check: (pauseMs: number) => void) {
  let cluster: Awaited<ReturnType<typeof startNatsCluster>>;
  let origin: RelayProcess;
  let edge: RelayProcess;
  let publisher: Publisher;
  let viewer: ReturnType<typeof watch>;

  before(async () => {
    cluster = await startNatsCluster(3);
    const env = (id: string) => ({
      NATS_URL: cluster.url,
      RELAY_STREAMS: JSON.stringify([{ name: 'cam', key: KEY }]),
      RELAY_BUS_REPLICAS: '3',
      RELAY_CLUSTER_KV_REPLICAS: '3',
      RELAY_CLUSTER_NODE_ID: id,
      RELAY_NATS_CONNECT_TIMEOUT_MS: '30000',
    });
    origin = await startRelay('origin', env('origin-1'));
    edge = await startRelay('edge', env('edge-1'));
    publisher = startPublisher({ url: origin.rtmpUrl(KEY) });
    viewer = watch(`ws://127.0.0.1:${edge.httpPort}/ws/cam`);
    await waitFor('frames flowing', () => viewer.record.fragments.length > 90, 30_000);
  });

  after(async () => {
    if (process.env.DEBUG_NODE_LOSS) {
      for (const [name, p] of [
        ['origin', origin],
        ['edge', edge],
      ] as const) {
        for (const l of p
          .output()
          .split('\n')
          .filter((x) => /"level":(40|50)|recreated|stalled|lease|connected|left/.test(x))) {
          const o = JSON.parse(l) as { time: number; msg: string; code?: string; err?: string; status?: string; server?: string };
          process.stderr.write(
            `# ${name} ${new Date(o.time).toISOString().slice(17, 23)} ${o.msg} ${o.code ?? ''} ${o.err ?? ''} ${o.status ?? ''} ${o.server ?? ''}\n`,
          );
        }
      }
    }
    viewer?.close();
    await publisher?.stop();
    await edge?.stop();
    await origin?.stop();
    await cluster?.cleanup();
  });

  return async () => {
    const nc = await connect({ servers: cluster.url });
    const leader = (await (await jetstreamManager(nc)).streams.info('RELAY_FRAMES')).cluster!.leader!;
    await nc.close();
    const victim = cluster.nodes.find(
      (n) =>
        n.name ===
        pickVictim(
          leader,
          cluster.nodes.map((x) => x.name),
        ),
    )!;
    const before = viewer.record.fragments.length;
    process.stderr.write(`# killing ${victim.name} :${victim.clientPort} at ${new Date().toISOString().slice(17, 23)}\n`);
    await victim.server.kill();
    await waitFor('frames flowing after the node loss', () => viewer.record.fragments.length > before + 150, 40_000);
    const times = viewer.record.fragments.slice(before - 1).map((f) => f.at);
    const pause = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    process.stderr.write(`# killed ${victim.name} (frame stream leader: ${leader}): longest pause ${pause} ms\n`);
    assert.equal(viewer.record.closed, undefined, 'the viewer stayed connected');
    assert.equal(publisher.process.exitCode, null, 'the publisher stayed connected');
    check(pause);
  };
}

// How long a pause is depends on which Raft leaders (meta, stream, buckets) and which
// consumers the dead node held: measured 0.06-16 s here (nats-server 2.9). The guarantee tested is that
// everything recovers by itself and nobody is disconnected; the pause is reported.
describe('a 3-node NATS cluster losing a follower of the frame stream', { timeout: 120_000 }, () => {
  const run = scenario(
    (leader, names) => names.find((n) => n !== leader)!,
    (pause) => assert.ok(pause < 30_000, `longest pause ${pause} ms`),
  );
  test('keeps frames flowing: the stream recovers by itself, nobody disconnected', () => run());
});

describe("a 3-node NATS cluster losing the frame stream's leader", { timeout: 120_000 }, () => {
  const run = scenario(
    (leader) => leader,
    (pause) => assert.ok(pause < 30_000, `longest pause ${pause} ms`),
  );
  test('elects another leader and the stream recovers by itself, nobody disconnected', () => run());
});
