import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../server/core/config/load.ts';
import { makeCa, makeServerCertificate } from '../helpers/certificates.ts';
import { startNats } from '../helpers/nats.ts';
import { startTestNode, type TestNode } from '../helpers/node-harness.ts';
import { waitFor } from '../helpers/ports.ts';
import { scrape, sample } from '../helpers/prometheus.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { closedWithin } from '../helpers/raw-rtmp.ts';
import { videoRuns, watch } from '../helpers/ws-viewer.ts';

const KEY = 'rtmps-stream-key-0123456789';
const OTHER_KEY = 'rtmps-other-key-0123456789';

/** ffmpeg run to its end, without blocking this process (the relay runs in it). */
function ffmpeg(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

/** One second of AAC published to `url` by ffmpeg (`outputArgs` before the URL: TLS options). */
const publishBriefly = (url: string, outputArgs: string[] = []) =>
  ffmpeg(['-v', 'error', '-f', 'lavfi', '-i', 'sine', '-t', '1', '-c:a', 'aac', '-f', 'flv', ...outputArgs, url]);

/** The certificate a TLS client is shown on the RTMPS port (its serial number). */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('RTMPS ingest (TLS with a CA made in the test, real ffmpeg)', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtmps-'));
  const ca = makeCa(dir, 'relay-test');
  const first = makeServerCertificate(dir, ca, 'first');
  // The files the relay reads: a renewal overwrites them in place.
  const certFile = join(dir, 'live.pem');
  const keyFile = join(dir, 'live.key');
  copyFileSync(first.cert, certFile);
  copyFileSync(first.key, keyFile);
  let nats: Awaited<ReturnType<typeof startNats>>;
  let relay: TestNode;
  let rtmpsPort: number;
  let publisher: Publisher;

  const refusals = async (reason: string) => sample(await scrape(relay.http), 'relay_ingest_publisher_refusals_total', { protocol: 'rtmps', reason }) ?? 0;

  before(async () => {
    nats = await startNats();
    relay = await startTestNode(['origin', 'edge'], nats.url, {
      streams: [
        { name: 'secure', key: KEY },
        { name: 'other', key: OTHER_KEY },
      ],
      rtmp: { host: '127.0.0.1', port: 0, handshakeTimeoutMs: 1500, maxConnectionsPerAddress: 4 },
      rtmps: { host: '127.0.0.1', port: 0, certFile, keyFile, certCheckMs: 200 },
    });
    rtmpsPort = relay.node.origin!.rtmps!.port;
    // OBS-like (H.264 High with B-frames, AAC 48 kHz), checking the relay's certificate against the test's CA.
    publisher = startPublisher({ url: `rtmps://localhost:${rtmpsPort}/live/${KEY}`, tlsCa: ca.cert });
  });

  after(async () => {
    await publisher?.stop();
    await relay?.node.close();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an OBS-like ffmpeg publishes over rtmps:// and a viewer plays it; the stream says RTMPS', async () => {
    const viewer = watch(relay.wsUrl('secure'));
    try {
      await waitFor('video over RTMPS', () => videoRuns(viewer.record).length > 60, 20_000);
      const live = relay.node.origin!.liveStreams().find((l) => l.stream === 'secure');
      assert.equal(live?.protocol, 'rtmps');
      assert.equal(sample(await scrape(relay.http), 'relay_ingest_live_streams', { protocol: 'rtmps' }), 1);
    } finally {
      viewer.close();
    }
  });

  test("a publisher that does not trust the relay's certificate stops before sending anything: no stream goes live", async () => {
    const stranger = makeCa(dir, 'stranger');
    const run = await publishBriefly(`rtmps://localhost:${rtmpsPort}/live/${OTHER_KEY}`, ['-tls_verify', '1', '-ca_file', stranger.cert]);
    assert.notEqual(run.status, 0, 'ffmpeg refuses the certificate');
    assert.match(run.stderr, /certificate failed verification/);
    // Over TLS 1.3 the server's side of the handshake is done before the client checks the
    // certificate: the relay sees a connection that closes before RTMP, and nothing is published.
    assert.equal(
      relay.node.origin!.liveStreams().some((l) => l.stream === 'other'),
      false,
    );
    assert.doesNotMatch(relay.logs(), /"stream":"other"/);
  });

  test('plain RTMP and garbage sent to the TLS port are refused with TLS_HANDSHAKE_FAILED, and the secure stream plays on', async () => {
    const before = await refusals('TLS_HANDSHAKE_FAILED');
    // Plain RTMP: ffmpeg's rtmp:// to the RTMPS port.
    const plain = await publishBriefly(`rtmp://127.0.0.1:${rtmpsPort}/live/${OTHER_KEY}`);
    assert.notEqual(plain.status, 0);
    // Random bytes, and a TLS record header followed by nonsense.
    for (const junk of [randomBytes(4096), Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), randomBytes(512)])]) {
      const socket = net.connect(rtmpsPort, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(junk);
      assert.ok(await closedWithin(socket, 5000), 'the relay closes the connection');
    }
    await waitFor('three refusals counted', async () => (await refusals('TLS_HANDSHAKE_FAILED')) >= before + 3, 5000);
    assert.match(relay.logs(), /"code":"TLS_HANDSHAKE_FAILED"/);
    const viewer = watch(relay.wsUrl('secure'));
    try {
      await waitFor('the secure stream still playing', () => videoRuns(viewer.record).length > 30, 10_000);
    } finally {
      viewer.close();
    }
  });

  test('a connection that never finishes its TLS handshake is closed after rtmp.handshakeTimeoutMs', async () => {
    const socket = net.connect(rtmpsPort, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    const opened = Date.now();
    socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, then nothing
    assert.ok(await closedWithin(socket, 6000), 'closed');
    const took = Date.now() - opened;
    assert.ok(took >= 1200 && took < 5000, `closed after ${took} ms (timeout 1500 ms)`);
  });

  test('RTMPS keeps the per-address connection limit of RTMP', async () => {
    const sockets: tls.TLSSocket[] = [];
    const tlsBefore = await refusals('TLS_HANDSHAKE_FAILED');
    try {
      // The publisher holds one; three more (TLS up) reach the limit of four; the fifth is refused before any TLS.
      for (let i = 0; i < 4; i++) {
        const s = tls.connect({ port: rtmpsPort, host: '127.0.0.1', rejectUnauthorized: false });
        s.on('error', () => {});
        if (i < 3) await new Promise((r) => s.once('secureConnect', r));
        sockets.push(s);
      }
      assert.ok(await closedWithin(sockets.at(-1)!, 3000), 'the fifth connection from one address is closed');
      await waitFor('counted as a refusal', async () => (await refusals('RTMP_TOO_MANY_CONNECTIONS')) >= 1, 3000);
      assert.equal(await refusals('TLS_HANDSHAKE_FAILED'), tlsBefore, 'and only as that');
    } finally {
      for (const s of sockets) s.destroy();
    }
    await waitFor('the connections released', () => servedSerial(rtmpsPort).then(Boolean, () => false), 5000);
  });

  test('a renewed certificate is served without a restart, and the publisher is not disturbed', async () => {
    const firstSerial = await servedSerial(rtmpsPort);
    const renewed = makeServerCertificate(dir, ca, 'renewed');
    // A broken pair on the way (the key written before the certificate) is not taken.
    copyFileSync(renewed.key, keyFile);
    await waitFor('the mismatch noticed', () => /RTMPS certificate not reloaded/.test(relay.logs()), 5000);
    assert.equal(await servedSerial(rtmpsPort), firstSerial, 'the previous certificate stays while the pair does not match');
    copyFileSync(renewed.cert, certFile);
    const renewedSerial = new (await import('node:crypto')).X509Certificate(readFileSync(renewed.cert)).serialNumber;
    await waitFor('the renewed certificate served', async () => (await servedSerial(rtmpsPort)) === renewedSerial, 5000);
    assert.notEqual(renewedSerial, firstSerial);
    assert.match(relay.logs(), /RTMPS certificate reloaded/);
    assert.equal(publisher.process.exitCode, null, 'the publisher streams on over its established session');
  });

  test('RTMPS needs both files, and a key that belongs to the certificate', async () => {
    assert.throws(() => loadConfig({ env: { RELAY_RTMPS_CERT_FILE: certFile }, overrides: {} }), /set both rtmps.certFile and rtmps.keyFile/);
    const other = makeServerCertificate(dir, makeCa(dir, 'other'), 'unrelated');
    await assert.rejects(
      startTestNode(['origin'], nats.url, { rtmps: { host: '127.0.0.1', port: 0, certFile: first.cert, keyFile: other.key, certCheckMs: 1000 } }),
      /CONFIG_INVALID|does not belong to the certificate/,
    );
  });
});
