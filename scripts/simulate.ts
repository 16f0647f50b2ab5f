/**
 * The simulation at internet scale (scripts/lib/simulation.ts): prints its report and writes it to
 * bench-results/simulation.{md,json}.
 *
 *   scripts/simulate                       # 1M viewers, 10k streams, 500 edges in 3 regions, an hour
 *   scripts/simulate --viewers 100000 --streams 2000 --edges 60
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULTS, simulate, type SimReport } from './lib/simulation.ts';

const { values } = parseArgs({
  options: {
    viewers: { type: 'string' },
    streams: { type: 'string' },
    edges: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string', default: 'bench-results/simulation' },
  },
});
const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
const report = simulate({
  viewers: num(values.viewers, DEFAULTS.viewers),
  streams: num(values.streams, DEFAULTS.streams),
  edges: num(values.edges, DEFAULTS.edges),
  seconds: num(values.seconds, DEFAULTS.seconds),
  seed: num(values.seed, DEFAULTS.seed),
});

export function render(r: SimReport): string {
  const o = r.options;
  const lines: string[] = [];
  const f = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  lines.push(
    `# Simulation: ${f(o.viewers)} viewers, ${f(o.streams)} streams (Zipf ${o.zipf}), ${o.edges} edges in ${o.regions.length} regions, ${o.seconds / 60} min`,
    '',
    `${f(r.joins)} joins (${f(o.viewers)} of them at the start) and ${f(r.leaves)} leaves (sessions ${o.meanSessionS / 60} min on average); ${r.failures.length} edges failed; ` +
      (o.gatewayFailure ? `the ${o.gatewayFailure.region} gateway down ${o.gatewayFailure.forS} s from second ${o.gatewayFailure.atS}; ` : '') +
      `ran in ${f(r.elapsedMs / 1000, 1)} s.`,
    '',
    '| region | edges | viewers at the end | placed outside their region | busiest edge / average (worst sample) |',
    '|---|---|---|---|---|',
    ...r.regions.map((x) => `| ${x.region} | ${x.edges} | ${f(x.viewers)} | ${f(x.elsewhere)} | ${f(x.busiestOverAverage, 3)}x |`),
    '',
    `Edge failures: ${r.failures.length}; viewers moved per failure: ${f(Math.min(...r.failures.map((x) => x.moved)))}-${f(Math.max(...r.failures.map((x) => x.moved)))} ` +
      `(each exactly the failed edge's own: ${r.failures.every((x) => x.moved === x.itsViewers) ? 'yes' : 'NO'}); ` +
      `streams re-homed that the failed edge did not hold: ${r.failures.reduce((n, x) => n + x.othersRehomed, 0)}.`,
    '',
    '| bus link | mean Mbit/s | peak Mbit/s | without regional copies (each edge its own) |',
    '|---|---|---|---|',
    ...r.links.map((l) => `| ${l.from} -> ${l.to} | ${f(l.meanMbps)} | ${f(l.peakMbps)} | ${f(l.directMbps)} |`),
    '',
    `Cross-region traffic per stream = (regions watching it outside its origin region) x its bitrate: ${r.copyMismatches === 0 ? 'yes, at every sample' : `NO (${r.copyMismatches} mismatches)`}.` +
      (r.gateway
        ? ` Gateway failure (${r.gateway.region}): ${f(r.gateway.stalledViewers)} viewers of streams across it paused, ${f(r.gateway.backlogMbit / 8000, 1)} GB to catch up when it returns (at most the origin's ${o.busRetentionS} s of frames per copy).`
        : ''),
    '',
    '| NATS server | messages/s (in + out) | JetStream streams | consumers | leads |',
    '|---|---|---|---|---|',
    ...r.servers.map((s) => `| ${s.server} | ${f(s.messagesPerS)} | ${s.streams} | ${f(s.consumers)} | ${s.leads} |`),
  );
  return lines.join('\n') + '\n';
}

const text = render(report);
process.stdout.write(text);
if (values.out) {
  writeFileSync(`${values.out}.md`, `<!-- scripts/simulate (${new Date().toISOString().slice(0, 10)}) -->\n${text}`);
  writeFileSync(`${values.out}.json`, JSON.stringify(report, null, 2) + '\n');
}
