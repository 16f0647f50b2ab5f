import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * prom-client's default gauges that end in `_total`, which Prometheus reserves
 * for counters (`promtool check metrics` says so). The same figures remain by
 * type, without the suffix: `sum(nodejs_active_handles)` is the total.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A node's registry: the default process metrics and what this node is. Roles add theirs. */
export function createNodeRegistry(node: { id: string; roles: string[]; version: string }): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  new Gauge({
    name: 'relay_node_info',
    help: "Always 1: this node's id, roles and version, to join on.",
    labelNames: ['node', 'roles', 'version'] as const,
    registers: [registry],
  }).set({ node: node.id, roles: node.roles.join(','), version: node.version }, 1);
  return registry;
}
