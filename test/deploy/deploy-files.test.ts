import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import { parse, parseAllDocuments } from 'yaml';
import { createEdgeMetrics } from '../../edge/edge-metrics.ts';
import { createPublishMetrics } from '../../server/core/bus/bus-metrics.ts';
import { createLeaseMetrics } from '../../server/core/cluster/lease-metrics.ts';
import { createIngestMetrics } from '../../server/origin/ingest/ingest-metrics.ts';
import { createNodeRegistry } from '../../node/node-metrics.ts';
import { createTranscodeMetrics } from '../../server/origin/transcode/transcode-metrics.ts';
import { createSrtMetrics } from '../../server/origin/ingest/srt/srt-ingest.ts';
import { createForwardMetrics } from '../../server/origin/forward/forward-metrics.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const run = (cmd: string, args: string[], cwd = ROOT) => spawnSync(cmd, args, { cwd, encoding: 'utf8' });

/** Every metric name a relay node can serve (histograms with their series), from the modules that define them. */
function metricCatalogue(): Set<string> {
  const registry = createNodeRegistry({ id: 'n', roles: ['origin', 'edge'], version: '0' });
  const reg = registry;
  createIngestMetrics(reg, () => []);
  createPublishMetrics(reg, () => ({ published: 0, failed: 0, inFlight: 0, resent: 0 }));
  createLeaseMetrics(reg, () => 0);
  createEdgeMetrics(reg);
  createTranscodeMetrics(reg, () => []);
  createSrtMetrics(reg, () => []);
  createForwardMetrics(reg, () => []);
  const names = new Set<string>();
  for (const m of reg.getMetricsAsArray()) {
    const { name, type } = m as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
  }
  names.add('up');
  return names;
}

describe('deployment files', () => {
  test('docker-compose.yml is a valid Compose file with a 3-node NATS cluster, 2 origins, 3 edges, a recorder, Prometheus and Grafana', () => {
    // dclint validates against the Compose specification's schema; the rules left out are style, and
    // unbound ports, which are deliberate for RTMP, HTTP and WebRTC (publishers and viewers are outside).
    const lint = run('node_modules/.bin/dclint', ['docker-compose.yml', '-q', '--disable-rule', 'no-unbound-port-interfaces']);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    const badFile = join(mkdtempSync(join(tmpdir(), 'compose-')), 'docker-compose.yml');
    writeFileSync(badFile, 'services:\n  a:\n    image: x\n    bogus_key: 1\n');
    const bad = run(join(ROOT, 'node_modules/.bin/dclint'), ['-q', badFile]);
    assert.notEqual(bad.status, 0, 'the linter refuses what the Compose schema does not allow');
    rmSync(dirname(badFile), { recursive: true, force: true });
    const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Record<string, unknown>> };
    assert.deepEqual(Object.keys(compose.services).sort(), [
      'edge-1',
      'edge-2',
      'edge-3',
      'grafana',
      'nats-1',
      'nats-2',
      'nats-3',
      'origin-1',
      'origin-2',
      'prometheus',
      'recorder-1',
    ]);
    for (const n of [1, 2, 3]) {
      const command = (compose.services[`nats-${n}`]!.command as string[]).join(' ');
      assert.match(command, /-js/);
      assert.match(command, /--auth \$\{RELAY_NATS_TOKEN:\?/, `nats-${n} requires the client token`);
      for (const other of [1, 2, 3].filter((o) => o !== n)) assert.match(command, new RegExp(`nats://nats-${other}:6222`), `nats-${n} routes to nats-${other}`);
    }
    for (const [name, role] of [
      ['origin-1', 'origin'],
      ['origin-2', 'origin'],
      ['edge-1', 'edge'],
      ['edge-2', 'edge'],
      ['edge-3', 'edge'],
      ['recorder-1', 'recorder'],
    ] as const) {
      const s = compose.services[name]!;
      assert.deepEqual(s.command, [role]);
      const env = s.environment as Record<string, string>;
      assert.equal(env.NATS_URL, 'nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222');
      assert.equal(env.RELAY_BUS_REPLICAS, '3');
      assert.equal(env.RELAY_BUS_SHARDS, '6', 'frames spread over six shards, two leaders per NATS node');
      assert.equal(env.RELAY_CLUSTER_NODE_ID, name);
      assert.match(env.RELAY_NATS_AUTH_TOKEN!, /^\$\{RELAY_NATS_TOKEN:\?/, `${name} authenticates to NATS`);
      assert.equal(env.RELAY_RECORDING_STORAGE, 'nats', `${name} reads and writes recordings in the NATS cluster (no shared folder)`);
    }
    // Every file the stack mounts is in the repository.
    for (const s of Object.values(compose.services)) {
      for (const v of (s.volumes as string[] | undefined) ?? []) {
        const source = v.split(':')[0]!;
        if (source.startsWith('./')) assert.ok(existsSync(join(ROOT, source)), `${source} exists`);
      }
    }
  });

  test('the Dockerfile is multi-stage, installs production packages and ffmpeg, runs as a non-root user, and copies only what exists', () => {
    const dockerfile = DockerfileParser.parse(read('Dockerfile'));
    const froms = dockerfile.getFROMs();
    assert.ok(froms.length >= 2, 'multi-stage');
    const runtimeStart = froms.at(-1)!.getRange().start.line;
    const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= runtimeStart);
    const of = (keyword: string) => runtime.filter((i) => i.getKeyword() === keyword).map((i) => i.getArgumentsContent() ?? '');
    assert.ok(
      of('RUN').some((r) => /apt-get install[^&]*\bffmpeg\b/.test(r)),
      'ffmpeg in the runtime image',
    );
    const user = of('USER').at(-1);
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `runs as ${user}`);
    assert.ok(of('HEALTHCHECK').some((h) => h.includes('/healthz')));
    assert.match(of('ENTRYPOINT').join(' '), /node\/cli\.ts/);
    assert.match(read('Dockerfile'), /npm ci --omit=dev/);
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    assert.ok(pkg.dependencies.tsx, 'tsx runs the relay in the image: a production dependency');
    const ignored = read('.dockerignore')
      .split('\n')
      .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
    // Every layer of the code is in the image (a folder left out fails at the first import, in production only).
    const copied = dockerfile
      .getInstructions()
      .filter((i) => i.getKeyword() === 'COPY' && !/--from=/.test(i.getTextContent()))
      .flatMap((i) => i.getArguments().map((a) => a.getValue()));
    for (const folder of ['server', 'edge', 'recorder', 'node', 'config']) assert.ok(copied.includes(folder), `COPY ${folder}`);
    for (const copy of dockerfile.getInstructions().filter((i) => i.getKeyword() === 'COPY')) {
      if (/--from=/.test(copy.getTextContent())) continue;
      const args = copy
        .getArguments()
        .map((a) => a.getValue())
        .filter((a) => !a.startsWith('--'));
      for (const source of args.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: exists`);
        assert.ok(!ignored.includes(source), `COPY ${source}: not excluded by .dockerignore`);
      }
    }
  });

  test('the Kubernetes manifests pass the Kubernetes API schemas: edges scale horizontally, origins sit behind a TCP load balancer', async () => {
    const docs = parseAllDocuments(read('config/kubernetes/relay.yaml')).map(
      (d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown> },
    );
    const validate = async (doc: { apiVersion: string; kind: string }) => {
      const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
      const mod = (await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`)) as Record<
        string,
        new (d: unknown) => { validate(): void }
      >;
      assert.ok(mod[doc.kind], `${doc.apiVersion} ${doc.kind} is a known kind`);
      new mod[doc.kind]!(doc).validate();
    };
    for (const doc of docs) await validate(doc);
    const broken = structuredClone(docs.find((d) => d.kind === 'Deployment')!);
    (broken.spec as Record<string, unknown>).replicas = 'three';
    await assert.rejects(validate(broken), 'the validator refuses a broken Deployment');

    const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!;
    const hpa = find('HorizontalPodAutoscaler', 'relay-edge').spec as { scaleTargetRef: { kind: string; name: string } };
    assert.deepEqual([hpa.scaleTargetRef.kind, hpa.scaleTargetRef.name], ['Deployment', 'relay-edge']);
    const originService = find('Service', 'relay-origin').spec as { type: string; ports: { port: number; protocol: string }[] };
    assert.equal(originService.type, 'LoadBalancer');
    assert.ok(originService.ports.some((p) => p.port === 1935 && p.protocol === 'TCP'));
    assert.ok(
      originService.ports.some((p) => p.port === 8890 && p.protocol === 'UDP'),
      'SRT (UDP) reaches the origins',
    );
    for (const name of ['relay-origin', 'relay-edge', 'relay-recorder']) {
      const pod = (
        find('Deployment', name).spec as {
          template: {
            spec: {
              containers: { readinessProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } } }[];
              securityContext: { runAsNonRoot: boolean };
            };
          };
        }
      ).template.spec;
      assert.equal(pod.containers[0]!.readinessProbe.httpGet.path, '/readyz');
      assert.equal(pod.containers[0]!.livenessProbe.httpGet.path, '/healthz');
      assert.equal(pod.securityContext.runAsNonRoot, true);
    }
    const nats = parse(read('config/kubernetes/nats-values.yaml')) as { config: { cluster: { replicas: number }; jetstream: { enabled: boolean } } };
    assert.deepEqual([nats.config.cluster.replicas, nats.config.jetstream.enabled], [3, true]);
  });

  test('promtool accepts the Prometheus configuration, and the alert rules pass their unit tests', () => {
    const config = run('promtool', ['check', 'config', 'prometheus.yml'], join(ROOT, 'config/prometheus'));
    assert.equal(config.status, 0, config.stdout + config.stderr);
    const rules = run('promtool', ['test', 'rules', 'relay-rules.test.yml'], join(ROOT, 'config/prometheus'));
    assert.equal(rules.status, 0, rules.stdout + rules.stderr);
  });

  test('the Grafana dashboard and the alert rules query only metrics the relay serves', () => {
    const catalogue = metricCatalogue();
    const dashboard = JSON.parse(read('config/grafana/relay-dashboard.json')) as { panels: { id: number; type: string; targets?: { expr: string }[] }[] };
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    const rules = parse(read('config/prometheus/relay-rules.yml')) as { groups: { rules: { expr: string }[] }[] };
    exprs.push(...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)));
    assert.ok(exprs.length > 30);
    const used = new Set<string>();
    for (const expr of exprs) {
      // Metric names: identifiers followed by a selector, a range or an operator, minus PromQL's own words.
      for (const m of expr.matchAll(/\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|\s*[*><=]|$)/g)) used.add(m[1]!);
    }
    const promql = new Set(['by', 'le', 'instance', 'stream', 'protocol', 'rendition', 'reason', 'how', 'job', 'state']);
    const unknown = [...used].filter((n) => !promql.has(n) && !catalogue.has(n));
    assert.deepEqual(unknown, [], 'every queried metric exists');
    for (const family of ['relay_ingest_', 'relay_srt_', 'relay_forward_', 'relay_bus_', 'relay_leases_', 'relay_edge_', 'relay_transcode_', 'process_']) {
      assert.ok(
        [...used].some((n) => n.startsWith(family)),
        `the dashboard shows ${family}*`,
      );
    }
  });
});
