import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { RTCPeerConnection, useH264, useOPUS } from 'werift';
import WebSocket from 'ws';
import { ErrorCodes } from '../../server/core/errors.ts';
import { amf0, rtmpC0C1, rtmpHandshakeDone, rtmpMessage, rtmpPublishCommands } from '../../scripts/lib/stream-checkers.ts';
import { makeCa, makeServerCertificate } from '../helpers/certificates.ts';
import { FIXTURE_OBS_LIKE, readFlvFile } from '../helpers/flv-file.ts';
import { freePort } from '../helpers/ports.ts';
import { FUZZ_SEED, iterations, mutate, mutateText, Rng } from '../helpers/fuzz.ts';
import { waitFor } from '../helpers/ports.ts';
import { startPublisher, type Publisher } from '../helpers/publisher.ts';
import { startRelay, type RelayProcess } from '../helpers/relay-process.ts';
import { watch } from '../helpers/ws-viewer.ts';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { srtOpen } from '../helpers/srt-caller.ts';
import { ControlType, HandshakeType, SrtCommand, writeControl, writeData, writeHandshake } from '../../server/origin/ingest/srt/srt-packet.ts';

/**
 * Hostile input over real sockets to a real relay process (origin and edge, its own
 * nats-server): mutated RTMP sessions, raw HTTP requests (pages, API, admin bodies,
 * WHIP and WHEP with SDP that werift then parses), WebSocket viewers that send junk.
 * Meanwhile one good stream plays to one good viewer. Afterwards: the process is up,
 * the good viewer missed no fragment, every HTTP refusal carried a stable code, and
 * nothing was logged at error level.
 */
const GOOD_KEY = 'fuzz-good-key-0123456789';
const FUZZ_KEY = 'fuzz-target-key-0123456789';
const ADMIN = 'fuzz-admin-token-Zb9VjYhQ2m0tq3k';
const KNOWN_CODES = new Set(Object.keys(ErrorCodes));
const tags = readFlvFile(FIXTURE_OBS_LIKE).slice(0, 90);
const CSID: Record<number, number> = { 8: 4, 9: 6, 18: 5 };

/** The bytes an encoder sends after the handshake: commands, then media tags in 128-byte chunks. */
function publishSession(key: string): Buffer {
  return Buffer.concat([
    rtmpPublishCommands('rtmp://127.0.0.1/live', 'live', key, 128),
    rtmpMessage(5, 18, 1, amf0('@setDataFrame', 'onMetaData', { width: 640, height: 360 })),
    ...tags.map((t) => {
      const m = rtmpMessage(CSID[t.type]!, t.type, 1, t.body);
      m.writeUIntBE(Math.min(t.timestamp, 0xfffffe), 1, 3);
      return m;
    }),
  ]);
}

/** One raw exchange (over TLS with `secure`): send, collect what comes back until the server closes or `ms` pass. */
function exchange(
  port: number,
  send: (socket: net.Socket, received: () => Buffer) => void,
  ms: number,
  secure = false,
  whole: (received: Buffer) => boolean = () => false,
): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]).subarray(0, 1 << 20);
      if (whole(got)) done();
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.on(secure ? 'secureConnect' : 'connect', () => send(socket, () => got));
  });
}

/**
 * An HTTP/1.1 answer received whole: its head, and its body by Content-Length or to the last chunk. A mutated
 * request that lost `Connection: close` keeps the connection open after its answer: no need to wait for the timeout.
 */
function wholeHttpAnswer(received: Buffer): boolean {
  const end = received.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = received.subarray(0, end).toString('latin1');
  if (/^HTTP\/1\.1 101/.test(head)) return true;
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (length) return received.length - end - 4 >= Number(length[1]);
  // From the head's last CRLF on, so that an empty chunked body ("0\r\n\r\n") is found too.
  return /\r\ntransfer-encoding: *chunked/i.test(head) && received.subarray(end + 2).includes('\r\n0\r\n\r\n');
}

/**
 * Writes a request; one cut short (no end of head, or less body than its Content-Length) is followed by the end of
 * the stream, as a client that went away: the server could only wait for the rest until its timeout.
 */
function sendHttp(socket: net.Socket, request: string): void {
  socket.write(Buffer.from(request, 'latin1'));
  const end = request.indexOf('\r\n\r\n');
  const length = end < 0 ? undefined : /\r\ncontent-length: *(\d+)/i.exec(request.slice(0, end));
  if (end < 0 || (length && request.length - end - 4 < Number(length[1]))) socket.end();
}

/** The first bytes a TLS client sends (its ClientHello), caught by a plain TCP listener. */
function clientHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = net.createServer((s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      }),
    );
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }).on('error', () => {});
    });
  });
}

async function inParallel(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

describe(`fuzzing a running relay over its sockets (seed ${FUZZ_SEED})`, { timeout: 600_000 }, () => {
  let relay: RelayProcess;
  let rtmpsPort: number;
  const certDir = mkdtempSync(join(tmpdir(), 'fuzz-rtmps-'));
  let publisher: Publisher;
  let good: ReturnType<typeof watch>;
  let rssBefore = 0;
  const statuses = new Map<number, number>();

  const rss = async () => {
    const text = await (await fetch(`${relay.http}/metrics`)).text();
    return Number(/^process_resident_memory_bytes (\S+)/m.exec(text)?.[1]);
  };

  before(async () => {
    const cert = makeServerCertificate(certDir, makeCa(certDir, 'fuzz'), 'relay');
    rtmpsPort = await freePort();
    relay = await startRelay('all', {
      RELAY_RTMPS_HOST: '127.0.0.1',
      RELAY_RTMPS_PORT: String(rtmpsPort),
      RELAY_RTMPS_CERT_FILE: cert.cert,
      RELAY_RTMPS_KEY_FILE: cert.key,
      RELAY_DEMO_KEY: 'fuzz-demo-key-0123456789',
      RELAY_STREAMS: JSON.stringify([
        { name: 'good', key: GOOD_KEY },
        { name: 'fuzz', key: FUZZ_KEY },
      ]),
      RELAY_ADMIN_TOKEN: ADMIN,
      RELAY_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '0',
      RELAY_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '0',
      RELAY_SRT_MAX_CONNECTIONS_PER_ADDRESS: '0',
      RELAY_SRT_IDLE_TIMEOUT_MS: '2000',
      RELAY_RTMP_HANDSHAKE_TIMEOUT_MS: '2000',
      RELAY_RTMP_IDLE_TIMEOUT_MS: '2000',
      RELAY_LOG_LEVEL: 'warn',
    });
    publisher = startPublisher({ url: relay.rtmpUrl(GOOD_KEY), file: FIXTURE_OBS_LIKE });
    good = watch(`ws://127.0.0.1:${relay.httpPort}/ws/good`);
    await waitFor('the good stream to play', () => good.record.fragments.length > 30, 20_000);
    rssBefore = await rss();
  });

  after(async () => {
    good?.close();
    await publisher?.stop();
    await relay?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  test('mutated RTMP publish sessions close their own connection and nothing else', async () => {
    const rng = new Rng(FUZZ_SEED);
    const valid = publishSession(FUZZ_KEY);
    const fuzzViewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/fuzz`); // the edge decodes whatever gets through
    await inParallel(iterations(60), 4, async (i) => {
      const input = mutate(rng, valid);
      const early = i % 5 === 0; // sometimes the handshake itself is the target
      await exchange(
        relay.rtmpPort,
        (socket, received) => {
          if (early) return void socket.write(mutate(rng, rtmpC0C1()));
          socket.write(rtmpC0C1());
          const poll = setInterval(() => {
            const done = rtmpHandshakeDone(received());
            if (!done) return;
            clearInterval(poll);
            socket.write(Buffer.concat([done.c2, input]));
          }, 5);
          socket.once('close', () => clearInterval(poll));
        },
        2500,
      );
    });
    fuzzViewer.close();
  });

  test('RTMPS: mutated TLS ClientHellos, and mutated RTMP publish sessions inside TLS, close their own connection and nothing else', async () => {
    const rng = new Rng(FUZZ_SEED + 7);
    const hello = await clientHello();
    await inParallel(iterations(30), 4, async () => {
      await exchange(rtmpsPort, (socket) => void socket.write(mutate(rng, hello)), 2500);
    });
    const valid = publishSession(FUZZ_KEY);
    await inParallel(iterations(30), 4, async () => {
      const input = mutate(rng, valid);
      await exchange(
        rtmpsPort,
        (socket, received) => {
          socket.write(rtmpC0C1());
          const poll = setInterval(() => {
            const done = rtmpHandshakeDone(received());
            if (!done) return;
            clearInterval(poll);
            socket.write(Buffer.concat([done.c2, input]));
          }, 5);
          socket.once('close', () => clearInterval(poll));
        },
        2500,
        true,
      );
    });
  });

  test('mutated HTTP requests (pages, API, admin bodies, WHIP and WHEP offers) get a status below 500 with a stable code, or an answer', async () => {
    const rng = new Rng(FUZZ_SEED + 1);
    const offers = await makeOffers();
    const req = (method: string, path: string, headers: Record<string, string> = {}, body = '') =>
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}${body ? `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n` : ''}\r\n${body}`;
    const admin = { authorization: `Bearer ${ADMIN}` };
    const json = { 'content-type': 'application/json', ...admin };
    const sdp = { 'content-type': 'application/sdp' };
    const templates = [
      req('GET', '/watch/good?protocol=mse&rendition=source'),
      req('GET', '/player/player.js'),
      req('GET', '/api/streams/good'),
      req('GET', '/api/route/good?exclude=a,b'),
      req('GET', '/healthz'),
      req('GET', '/readyz'),
      req('GET', '/admin/api/cluster', admin),
      req('GET', '/admin/api/streams/good', admin),
      req('POST', '/admin/api/streams/fuzz/end', json, JSON.stringify({ reason: 'fuzz' })),
      req('POST', '/whip/fuzz', { ...sdp, authorization: `Bearer ${FUZZ_KEY}` }, offers.whip),
      req('POST', '/whep/good', sdp, offers.whep),
      req('DELETE', '/whep/good/00000000-0000-0000-0000-000000000000'),
      req('PATCH', '/whip/fuzz/00000000-0000-0000-0000-000000000000', { 'content-type': 'application/trickle-ice-sdpfrag' }, 'a=end-of-candidates\r\n'),
      req('GET', '/ws/good', { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }),
    ];
    const bad: string[] = [];
    await inParallel(iterations(600), 8, async (i) => {
      const template = templates[i % templates.length]!;
      const request = i < templates.length ? template : mutateText(rng, template, templates);
      const reply = (await exchange(relay.httpPort, (socket) => sendHttp(socket, request), 3000, false, wholeHttpAnswer)).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status === 0 || status === 101 || status < 400) return; // closed without a word (a dropped connection), upgraded, or served
      const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
      const code = /"code":"([A-Z_]+)"/.exec(body)?.[1];
      if (!code || !KNOWN_CODES.has(code) || (status >= 500 && !['NO_EDGE_AVAILABLE', 'ORIGIN_UNREACHABLE', 'STREAM_OFFLINE'].includes(code))) {
        bad.push(`${status} ${body.slice(0, 120)} <- ${JSON.stringify(request.slice(0, 120))}`);
      }
    });
    assert.deepEqual(bad.slice(0, 10), [], `seed ${FUZZ_SEED}: refusals without a stable code, or server errors`);
    assert.ok((statuses.get(200) ?? 0) > 0 && [...statuses.keys()].some((s) => s >= 400), `a mix of answers: ${JSON.stringify([...statuses])}`);
  });

  test('WebSocket viewers with mutated URLs that send junk frames are closed or ignored', async () => {
    const rng = new Rng(FUZZ_SEED + 2);
    await inParallel(iterations(150), 8, async () => {
      const path = mutateText(rng, '/ws/good?rendition=source&start=next').replace(/[\s#]/g, '');
      let ws: WebSocket;
      try {
        ws = new WebSocket(`ws://127.0.0.1:${relay.httpPort}${path.startsWith('/') ? path : `/${path}`}`, { maxPayload: 64 << 20 });
      } catch {
        return; // a URL the client itself will not send
      }
      ws.on('error', () => {});
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1500);
        ws.on('open', () => {
          for (let k = 0; k < 1 + rng.int(5); k++) {
            const data = rng.bytes(rng.int(rng.int(4) === 0 ? 100_000 : 300));
            ws.send(rng.int(2) ? data : data.toString('latin1'));
          }
          if (rng.int(3) === 0) ws.close(rng.pick([1000, 1001, 3000, 4999]));
        });
        ws.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    });
  });

  test('SRT: random datagrams, mutated handshakes, and accepted callers sending mutated data and control packets end their own session and nothing else', async () => {
    const rng = new Rng(FUZZ_SEED + 8);
    const port = Number(new URL(relay.srtUrl(FUZZ_KEY)).port);
    const ts = readFileSync(new URL('../fixtures/obs-like-2s.mpegts', import.meta.url));
    const fuzzViewer = watch(`ws://127.0.0.1:${relay.httpPort}/ws/fuzz`); // the edge decodes whatever gets through
    const junk = dgram.createSocket('udp4');
    const induction = writeControl(
      ControlType.HANDSHAKE,
      0,
      0,
      0,
      0,
      writeHandshake({
        version: 4,
        encryption: 0,
        extensionField: 2,
        isn: 1,
        mss: 1500,
        flowWindow: 8192,
        type: HandshakeType.INDUCTION,
        socketId: 77,
        cookie: 0,
        peerIp: Buffer.alloc(16),
        extensions: [],
      }),
    );
    for (let i = 0; i < iterations(500); i++) junk.send(i % 2 ? rng.bytes(rng.int(1500)) : mutate(rng, induction), port, '127.0.0.1');
    junk.close();
    for (let session = 0; session < iterations(12); session++) {
      const { result, connection } = await srtOpen(port, FUZZ_KEY);
      assert.ok(result.accepted && connection, `seed ${FUZZ_SEED}: the fuzz caller was refused: ${JSON.stringify(result)}`);
      const controls = [
        writeControl(ControlType.ACKACK, 0, 1, 0, connection.socketId),
        writeControl(ControlType.KEEPALIVE, 0, 0, 0, connection.socketId),
        writeControl(ControlType.DROPREQ, 0, 0, 0, connection.socketId, Buffer.from([0, 0, 0, 1, 0, 0, 0, 9])),
        writeControl(ControlType.USER, SrtCommand.KMREQ, 0, 0, connection.socketId, rng.bytes(48)),
        writeControl(ControlType.NAK, 0, 0, 0, connection.socketId, rng.bytes(16)),
      ];
      const started = performance.now();
      for (let n = 0, at = 0; at + 1316 <= ts.length && n < 200; n++, at += 1316) {
        const data = writeData({
          seq: (connection.isn + n) % 2 ** 31,
          position: 3,
          inOrder: false,
          key: 0,
          retransmitted: false,
          messageNumber: n + 1,
          timestamp: Math.round((performance.now() - started) * 1000),
          destination: connection.socketId,
          payload: ts.subarray(at, at + 1316),
        });
        const roll = rng.int(10);
        if (roll === 0) connection.send(mutate(rng, data));
        else if (roll === 1) connection.send(mutate(rng, rng.pick(controls)));
        else if (roll !== 2) connection.send(data); // 2: lost
        if (n % 20 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      connection.close();
    }
    fuzzViewer.close();
  });

  test('afterwards the relay is up, the good viewer missed no fragment, nothing was logged as an error, and memory is bounded', async () => {
    const health = await fetch(`${relay.http}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(relay.child.exitCode, null);
    const before = good.record.fragments.length;
    await waitFor('the good stream to go on', () => good.record.fragments.length > before + 30, 10_000);
    const seqs = good.record.fragments.map((f) => f.sequence);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `fragment ${i} follows on`);
    const times = good.record.fragments.map((f) => f.at);
    const longest = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    assert.ok(longest < 2000, `longest pause of the good viewer ${longest} ms`);
    assert.equal(good.record.closed, undefined);
    const errors = relay
      .output()
      .split('\n')
      .filter((l) => /"level":(50|60)/.test(l));
    assert.deepEqual(errors.slice(0, 5), [], 'no error-level log lines');
    const rssAfter = await rss();
    process.stdout.write(
      `# fuzz: seed ${FUZZ_SEED}, HTTP statuses ${JSON.stringify(Object.fromEntries(statuses))}, RSS ${Math.round(rssBefore / 1e6)} -> ${Math.round(rssAfter / 1e6)} MB\n`,
    );
    assert.ok(rssAfter < rssBefore + 300e6, `RSS grew from ${Math.round(rssBefore / 1e6)} to ${Math.round(rssAfter / 1e6)} MB`);
  });
});

/** A WHIP offer (send H.264 and Opus) and a WHEP offer (receive), from werift, with host candidates. */
async function makeOffers(): Promise<{ whip: string; whep: string }> {
  const offer = async (direction: 'sendonly' | 'recvonly') => {
    const pc = new RTCPeerConnection({ codecs: { video: [useH264()], audio: [useOPUS()] }, bundlePolicy: 'max-bundle' });
    pc.addTransceiver('video', { direction });
    pc.addTransceiver('audio', { direction });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => setTimeout(r, 300));
    const sdp = pc.localDescription!.sdp;
    await pc.close();
    return sdp;
  };
  return { whip: await offer('sendonly'), whep: await offer('recvonly') };
}
