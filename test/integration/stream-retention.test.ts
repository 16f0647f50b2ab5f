import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';

const TRIMMED_KEY = 'retention-trimmed-key-0123456789';
const KEPT_KEY = 'retention-kept-key-0123456789';
const KEEP_S = 2;
const GOP_S = 0.5;

describe('per-stream retention on a shared frame stream (streams[].busMaxAgeSeconds)', { timeout: 90_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let nc: NatsConnection;
  const publishers: Publisher[] = [];

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin'], nats.url, {
      bus: { maxAgeSeconds: 60 },
      streams: [
        { name: 'trimmed', key: TRIMMED_KEY, busMaxAgeSeconds: KEEP_S },
        { name: 'kept', key: KEPT_KEY },
      ],
    });
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await Promise.all(publishers.map((p) => p.stop()));
    await relay?.node.close();
    await nc?.close();
    await nats?.cleanup();
  });

  /** The oldest message the frame stream still holds for a stream's source rendition (a message get by subject, from sequence 1). */
  const oldest = async (stream: string) => {
    const request = { next_by_subj: `${relay.config.bus.subjectPrefix}.${stream}.source.>`, seq: 1 };
    for (let attempt = 0; ; attempt++) {
      const reply = await nc.request(`$JS.API.STREAM.MSG.GET.${relay.config.bus.streamName}`, JSON.stringify(request));
      const answer = reply.json<{ message?: { seq: number; subject: string; time: string }; error?: { code: number; description: string } }>();
      // A busy server's error is asked again; "no message found" (404) is an answer, and a failure here.
      if (answer.error && answer.error.code !== 404 && attempt < 5) continue;
      const m = answer.message;
      if (!m) {
        const trims = relay
          .logs()
          .split('\n')
          .filter((l) => l.includes('trimmed to its retention') || l.includes('BUS_TRIM_FAILED'))
          .slice(-4);
        throw new Error(`no frame of ${stream} on the bus (${JSON.stringify(answer.error)}); the last trims: ${trims.join('\n')}`);
      }
      return { seq: m.seq, subject: m.subject, ageMs: Date.now() - Date.parse(m.time) };
    }
  };

  test("a stream keeps its own retention, from a keyframe, in the same JetStream stream as one that keeps the shard's", async (t) => {
    // The trimmed stream first: its first keyframe is the frame stream's first message, sequence 1 (a purge "before 1"
    // once purged all of it: nats-server reads 0 and 1 as no bound).
    const onBus = async (stream: string) => oldest(stream).catch(() => undefined);
    publishers.push(startPublisher({ url: relay.rtmpUrl(TRIMMED_KEY), gop: 30 * GOP_S }));
    const first = await waitFor('the trimmed stream on the bus', () => onBus('trimmed'), 20_000);
    assert.equal(first.seq, 1);
    publishers.push(startPublisher({ url: relay.rtmpUrl(KEPT_KEY), gop: 30 * GOP_S }));
    let keptFirst: Awaited<ReturnType<typeof oldest>> | undefined;
    await waitFor('the kept stream on the bus', async () => (keptFirst = await onBus('kept')), 20_000);
    // Trimmed: once its first frames are gone, what stays starts at a keyframe and spans its retention, plus at most
    // a GOP and the trimmer's interval (1 s) and a second of slack for ack and purge round trips.
    await waitFor(
      'the first trim',
      async () => (await oldest('trimmed')).ageMs < (KEEP_S + 3) * 1000 && (await oldest('kept')).ageMs > (KEEP_S + 4) * 1000,
      30_000,
    );
    const ages: number[] = [];
    for (let i = 0; i < 6; i++) {
      const now = await oldest('trimmed');
      assert.match(now.subject, /\.k$/, 'it starts at a keyframe');
      assert.ok(now.ageMs >= KEEP_S * 1000 - 100, `its oldest frame is ${now.ageMs} ms old: never less than its retention`);
      assert.ok(now.ageMs <= (KEEP_S + GOP_S + 1 + 1) * 1000, `its oldest frame is ${now.ageMs} ms old`);
      ages.push(now.ageMs);
      await waitFor('the next GOP', async () => (await oldest('trimmed')).seq !== now.seq, 5000);
    }
    t.diagnostic(`oldest frame of the trimmed stream, six GOPs in a row: ${ages.join(', ')} ms old`);
    // Kept: nothing of it was purged, its first frame is still there.
    const keptNow = await oldest('kept');
    assert.equal(keptNow.seq, keptFirst!.seq, 'the other stream keeps every frame');
    assert.ok(keptNow.ageMs > (KEEP_S + 6) * 1000, `its oldest frame is ${keptNow.ageMs} ms old`);
    assert.match(relay.logs(), /stream trimmed to its retention/);
  });
});
