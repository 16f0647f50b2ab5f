import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { promtoolCheck, sample, scrape } from '../helpers/prometheus.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';
import { RELAY_VERSION } from '../../server/core/version.ts';

const KEY = 'metrics-test-key-0123456789';

describe('metrics of a node with a live stream', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let publisher: Publisher;
  let viewer: ReturnType<typeof watch>;
  let first: string;
  let second: string;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [{ name: 'm', key: KEY }],
      cluster: { leaseTtlMs: 2000 },
      transcode: { enabled: true, ladder: [{ name: '90p', height: 90, videoKbps: 100, audioKbps: 32, preset: 'ultrafast' }], opusKbps: 0 },
    });
    // A publisher with the wrong key first: refused, counted by reason.
    const wrong = startPublisher({ url: relay.rtmpUrl('not-the-key-0123456789'), size: '160x90', seconds: 2 });
    await wrong.exited;
    publisher = startPublisher({ url: relay.rtmpUrl(KEY), size: '320x180', bitrate: '400k' });
    viewer = watch(relay.wsUrl('m'));
    await viewer.opened;
    await waitFor('frames to reach the viewer', () => viewer.record.fragments.length > 30, 30_000);
    first = await scrape(relay.http);
    await new Promise((r) => setTimeout(r, 2500));
    second = await scrape(relay.http);
  });

  after(async () => {
    viewer?.ws.close();
    await publisher?.stop();
    await relay?.node.close();
    await nats?.cleanup();
  });

  const moved = (name: string, labels: Record<string, string> = {}) => {
    const a = sample(first, name, labels);
    const b = sample(second, name, labels);
    assert.ok(a !== undefined && b !== undefined, `${name} ${JSON.stringify(labels)} exists`);
    assert.ok(b > a, `${name} ${JSON.stringify(labels)} moved: ${a} -> ${b}`);
  };

  test('ingest reports the live stream, its bitrate and frame rate, and publishers accepted and refused by reason', () => {
    assert.equal(sample(second, 'relay_ingest_live_streams', { protocol: 'rtmp' }), 1);
    assert.equal(sample(second, 'relay_ingest_live_streams', { protocol: 'whip' }), 0);
    const fps = sample(second, 'relay_ingest_frame_rate', { stream: 'm' })!;
    assert.ok(fps > 20 && fps < 40, `frame rate ${fps}`);
    const bps = sample(second, 'relay_ingest_bytes_per_second', { stream: 'm' })! * 8;
    assert.ok(bps > 100_000 && bps < 2_000_000, `bitrate ${bps}`);
    assert.equal(sample(second, 'relay_ingest_publisher_connects_total', { protocol: 'rtmp' }), 1);
    assert.equal(sample(second, 'relay_ingest_publisher_refusals_total', { protocol: 'rtmp', reason: 'STREAM_KEY_INVALID' }), 1);
  });

  test('the bus reports publish latency, messages in flight, consumer lag and restarts', () => {
    moved('relay_bus_publish_latency_seconds_count');
    moved('relay_bus_messages_published_total');
    assert.ok(sample(second, 'relay_bus_publish_in_flight')! >= 0);
    assert.equal(sample(second, 'relay_bus_publish_failures_total'), 0);
    assert.ok(sample(second, 'relay_bus_consumer_lag_messages', { stream: 'm', rendition: 'source' })! >= 0);
    assert.equal(sample(second, 'relay_bus_consumers'), 1);
    assert.equal(sample(second, 'relay_bus_consumer_restarts_total'), 0);
  });

  test('leases report the held lease, its acquisition and renewals', () => {
    assert.equal(sample(second, 'relay_leases_held'), 1);
    assert.equal(sample(second, 'relay_leases_acquired_total', { how: 'free' }), 1);
    assert.equal(sample(second, 'relay_leases_lost_total'), 0);
    moved('relay_leases_renewal_latency_seconds_count');
  });

  test('the edge reports viewers by protocol, bytes out, time to first frame and relay latency', () => {
    assert.equal(sample(second, 'relay_edge_viewers', { protocol: 'ws' }), 1);
    assert.equal(sample(second, 'relay_edge_viewers', { protocol: 'webrtc' }), 0);
    moved('relay_edge_bytes_out_total', { protocol: 'ws' });
    assert.equal(sample(second, 'relay_edge_time_to_first_frame_seconds_count', { protocol: 'ws' }), 1);
    const ttff = sample(second, 'relay_edge_time_to_first_frame_seconds_sum', { protocol: 'ws' })!;
    assert.ok(ttff > 0 && ttff < 20, `time to first frame ${ttff} s`);
    moved('relay_edge_relay_latency_seconds_count');
    assert.equal(sample(second, 'relay_edge_viewers_disconnected_slow_total'), 0);
  });

  test('transcoding reports its speed against real time', () => {
    const speed = sample(second, 'relay_transcode_speed', { stream: 'm' })!;
    assert.ok(speed > 0.5 && speed < 1.5, `speed ${speed}`);
    assert.equal(sample(second, 'relay_transcode_restarts_total'), 0);
  });

  test('the default process metrics are there', () => {
    moved('process_cpu_seconds_total');
    assert.ok(sample(second, 'process_resident_memory_bytes')! > 0);
    assert.ok(sample(second, 'nodejs_eventloop_lag_p99_seconds') !== undefined);
    assert.equal(sample(second, 'relay_node_info', { node: relay.node.nodeId, roles: 'origin,edge', version: RELAY_VERSION }), 1);
  });

  test('promtool check metrics passes on what the node serves', () => {
    const { status, output } = promtoolCheck(second);
    assert.equal(status, 0, output);
  });
});
