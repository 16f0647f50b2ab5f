import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { encodeFrame } from '../../server/core/bus/frame-codec.ts';
import { StreamSubjects } from '../../server/core/bus/subjects.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'token-reset-key-0123456789';
const TTL_MS = 1500;

describe('fencing tokens that start over', { timeout: 90_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let publisher: Publisher | undefined;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, { streams: [{ name: 'cam', key: KEY }], cluster: { leaseTtlMs: TTL_MS } });
  });

  after(async () => {
    await publisher?.stop();
    await relay?.node.close();
    await nats?.cleanup();
  });

  test('a newest token silent for longer than a lease lives is forgotten: a lower one plays again', async () => {
    const viewer = watch(relay.wsUrl('cam'));
    await viewer.opened;
    await waitFor('the edge to consume the stream', () => viewer.record.controls.some((c) => c.type === 'status'));
    // A publication with a far higher token than any lease this bucket will hand out,
    // as if the lease bucket had been rebuilt under a running edge.
    const nc = await connect({ servers: nats.url });
    const init = { metadata: {} };
    const frame = {
      track: 'video' as const,
      codec: 'h264' as const,
      dts: 0,
      cto: 0,
      keyframe: true,
      payload: Buffer.from('0000000165', 'hex'),
      receivedAt: Date.now(),
      init,
    };
    await jetstream(nc).publish(new StreamSubjects('relay', 'cam').keyframe, encodeFrame(frame, { counter: 0, token: 1e9 }, true, 1 << 20)[0]);
    await nc.close();
    const injectedAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    publisher = startPublisher({ url: relay.rtmpUrl(KEY) });
    await waitFor('frames from the real publication', () => viewer.record.fragments.length > 30, 20_000);
    const firstAt = viewer.record.fragments[0]!.at;
    assert.ok(firstAt - injectedAt >= TTL_MS, `the lower token was fenced off for ${firstAt - injectedAt} ms first`);
    assert.ok(relay.logs().includes('accepting a lower token'));
    viewer.close();
  });
});
