import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { watch } from '../helpers/ws-viewer.ts';

const KEY = 'dashboard-key-0123456789ab';
const TOKEN = 'dashboard-admin-token-0123456789';

describe('the cluster dashboard in Chromium', { timeout: 120_000 }, () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let origin: TestNode;
  let edges: TestNode[];
  let publisher: Publisher;
  let viewers: ReturnType<typeof watch>[];
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  before(async () => {
    nats = await startNats();
    const streams = [
      // A forward to a server that is not there: retried, shown with its state, its key hidden.
      { name: 'live-one', key: KEY, forward: ['rtmp://127.0.0.1:9/live/forward-secret-key'] },
      { name: 'idle-one', key: 'idle-key-0123456789abcdef' },
    ];
    const cluster = (nodeId: string) => ({ nodeId, edgeHeartbeatMs: 300 });
    origin = await startTestNode(['origin'], nats.url, { streams, admin: { token: TOKEN }, cluster: cluster('origin-a') });
    edges = [
      await startTestNode(['edge'], nats.url, { streams, admin: { token: TOKEN }, cluster: cluster('edge-a') }),
      await startTestNode(['edge'], nats.url, { streams, admin: { token: TOKEN }, cluster: cluster('edge-b') }),
    ];
    publisher = startPublisher({ url: origin.rtmpUrl(KEY), size: '320x180', bitrate: '300k' });
    // Two viewers on edge-a, one on edge-b (routed=1: the test places them, not the ring).
    viewers = [edges[0]!, edges[0]!, edges[1]!].map((e) => watch(`${e.wsUrl('live-one')}?routed=1`));
    await waitFor('every viewer to get frames', () => viewers.every((v) => v.record.fragments.length > 5), 30_000);
    chromium = await launchChromium();
    page = await chromium.browser.newPage();
    page.on('dialog', (d) => void d.accept());
  });

  after(async () => {
    for (const v of viewers ?? []) v.ws.close();
    await chromium?.close();
    await publisher?.stop();
    for (const e of edges ?? []) await e.node.close();
    await origin?.node.close();
    await nats?.cleanup();
  });

  const text = (selector: string) => page.locator(selector).innerText();

  test('asks for the token, and says so when it is wrong', async () => {
    await page.goto(`${edges[1]!.http}/admin`);
    await page.locator('[data-testid=login]').waitFor({ state: 'visible' });
    await page.fill('[data-testid=token]', 'not-the-admin-token-0123456789');
    await page.press('[data-testid=token]', 'Enter');
    await waitFor('the refusal', async () => /ADMIN_TOKEN_INVALID/.test(await text('[data-testid=login-error]')), 10_000, 100);
  });

  test('shows the origins, the edges with their load, and each stream with its owner and placement', async () => {
    await page.fill('[data-testid=token]', TOKEN);
    await page.press('[data-testid=token]', 'Enter');
    await waitFor(
      'the cluster with 3 viewers',
      async () =>
        (await page
          .locator('[data-testid=count-viewers] b')
          .textContent()
          .catch(() => '')) === '3',
      15_000,
      200,
    );
    assert.equal(await text('[data-testid=count-origins] b'), '1');
    assert.equal(await text('[data-testid=count-edges] b'), '2');
    assert.equal(await text('[data-testid=count-live-streams] b'), '1');
    const originRow = await text('[data-testid=origin-origin-a]');
    assert.match(originRow, /live-one \(rtmp\)/);
    assert.match(originRow, /rtmp:\/\/127\.0\.0\.1:\d+\/live/);
    assert.match(await text('[data-testid=edge-edge-a]'), /2 \/ 2000[\s\S]*live-one: 2 \/ 0[\s\S]*yes/);
    assert.match(await text('[data-testid=edge-edge-b]'), /1 \/ 2000[\s\S]*live-one: 1 \/ 0[\s\S]*yes/);
    const token = origin.node.origin!.liveStreams()[0]!.token;
    const live = await text('[data-testid=stream-live-one]');
    assert.match(live, new RegExp(`live\\s+origin-a · ${token}`));
    assert.match(live, /rtmp · H\.264 \+ AAC · \d+ kbit\/s · \d+(\.\d)? fps/, 'protocol, codecs, bitrate, frame rate');
    assert.match(live, /source/);
    assert.match(live, /edge-a: 2, edge-b: 1/);
    assert.match(live, /edge-(a|b)/, 'placed on an edge');
    assert.match(await text('[data-testid=stream-idle-one]'), /idle-one\s+offline/);
  });

  test("shows each live stream's forwards to other servers with their state, keys hidden", async () => {
    await waitFor(
      'the forward shown as retrying',
      async () => /→ rtmp:\/\/127\.0\.0\.1:9\/live\/\*\*\* (retrying|waiting) \(\d+ restarts\)/.test(await text('[data-testid=stream-live-one]')),
      15_000,
      200,
    );
    assert.ok(!(await page.content()).includes('forward-secret-key'));
  });

  test('ends a stream from the dashboard: it turns offline and its publisher is disconnected', async () => {
    // The admin API's answer, to say why if the stream stays live (one CI run saw it stay live past 10 s).
    const answered = page
      .waitForResponse((r) => r.url().endsWith('/streams/live-one/end'), { timeout: 10_000 })
      .then(
        async (r) => `${r.status()} ${await r.text()}`,
        (err: Error) => `no answer: ${err.message}`,
      );
    await page.click('[data-testid=end-live-one]');
    await waitFor('the stream offline', async () => /offline/.test(await text('[data-testid=stream-live-one]')), 10_000, 200).catch(async (err: Error) => {
      throw new Error(`${err.message}; the end request answered ${await answered}`);
    });
    const status = await Promise.race([publisher.exited, new Promise((r) => setTimeout(() => r('running'), 10_000))]);
    assert.notEqual(status, 'running');
    assert.equal(await text('[data-testid=count-live-streams] b'), '0');
  });
});
