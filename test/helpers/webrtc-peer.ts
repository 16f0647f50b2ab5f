/**
 * A WebRTC peer in a process of its own, so that its sockets and timers are not
 * counted with the relay's (the cascade-close test counts the relay's):
 *
 *   node --import tsx test/helpers/webrtc-peer.ts publish <whip url> <key> <clip dir>
 *   node --import tsx test/helpers/webrtc-peer.ts play <whep url>
 *
 * stdout: one JSON line per event ({"connected":true}, {"media":n} once RTP arrives).
 * stdin: "stop" ends the session (WHIP: DELETE; WHEP: DELETE) and exits.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RTCPeerConnection, useH264, useNACK, useOPUS, usePLI } from 'werift';
import { waitFor } from './ports.ts';
import { encodeWhipClip, publishWhipClip } from './whip-publisher.ts';

const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function play(url: string): Promise<() => Promise<void>> {
  const pc = new RTCPeerConnection({
    codecs: { video: [useH264({ rtcpFeedback: [usePLI(), useNACK()] })], audio: [useOPUS()] },
    headerExtensions: { video: [], audio: [] },
    bundlePolicy: 'max-bundle',
  });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  let packets = 0;
  pc.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => packets++ === 0 && say({ media: 1 })));
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription!.sdp });
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
  const location = new URL(res.headers.get('location')!, res.url).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  say({ connected: true });
  return async () => {
    await fetch(location, { method: 'DELETE' }).catch(() => {});
    await pc.close();
  };
}

async function main(): Promise<void> {
  const [mode, url, key, dir] = process.argv.slice(2);
  let stop: () => Promise<void>;
  if (mode === 'publish') {
    const publisher = await publishWhipClip(url!, key!, encodeWhipClip(dir!, { size: '320x180', kbps: 300, seconds: 2 }));
    say({ connected: true });
    stop = () => publisher.stop();
  } else {
    stop = await play(url!);
  }
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === 'stop') break;
  }
  await stop();
  process.exit(0);
}

/** The peer, as a test sees it: its events so far, and a clean stop. */
export interface PeerProcess {
  events: Record<string, unknown>[];
  /** Resolves once an event with this key has been printed. */
  saw(key: string, timeoutMs?: number): Promise<unknown>;
  stop(): Promise<void>;
}

export function startPeer(args: string[]): PeerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.on('error', () => {}); // the peer exited first
  const events: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    events,
    saw: (key, timeoutMs = 20_000) => waitFor(`the peer's ${key}`, () => events.find((e) => key in e), timeoutMs),
    // Safe to call twice, and after the peer has exited.
    stop: async () => {
      if (!child.stdin.writableEnded) child.stdin.end('stop\n');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      child.kill('SIGKILL');
      await exited;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
