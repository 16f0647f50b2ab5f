/**
 * WHEP load generator, one process of many: werift peer connections that play a
 * stream from an edge and check what arrives without decoding it. ICE, DTLS and
 * consent are werift's; SRTP packets are counted and checked from their clear
 * header (sequence continuity per SSRC) and not decrypted, so that one load
 * process keeps up with hundreds of 2 Mbps viewers on a shared machine.
 *
 *   node --import tsx scripts/lib/whep-load.ts <whep url>
 *
 * stdin, one JSON line per command: {"add": n} connects n more viewers.
 * stdout, one JSON line per second: viewers connected, packets, bytes, packets
 * missing (sequence gaps), failures, and this process's CPU seconds.
 */
import { createInterface } from 'node:readline';
import { RTCPeerConnection, useH264, useOPUS, usePLI, useNACK } from 'werift';

const url = process.argv[2]!;

interface Track {
  lastSeq: number;
  packets: number;
}
const totals = { connected: 0, failed: 0, packets: 0, bytes: 0, missing: 0, reordered: 0, closed: 0 };
const peers: RTCPeerConnection[] = [];

/** RTP (not RTCP: payload types 200-206 with the marker bit are RTCP packet types 72-78). */
const isRtp = (d: Buffer) => d.length >= 12 && d[0]! >= 128 && d[0]! <= 191 && !(d[1]! >= 192 && d[1]! <= 223);

async function viewer(): Promise<void> {
  const pc = new RTCPeerConnection({
    codecs: { video: [useH264({ rtcpFeedback: [usePLI(), useNACK()] })], audio: [useOPUS()] },
    headerExtensions: { video: [], audio: [] },
    bundlePolicy: 'max-bundle',
  });
  peers.push(pc);
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription!.sdp });
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  // Count SRTP from its clear header before werift decrypts it (nothing else is intercepted).
  const connection = (pc.getTransceivers()[0]!.receiver.dtlsTransport as unknown as { iceTransport: { connection: { onData: { execute(d: Buffer): void } } } })
    .iceTransport.connection;
  const execute = connection.onData.execute.bind(connection.onData);
  const tracks = new Map<number, Track>();
  connection.onData.execute = (d: Buffer) => {
    if (!isRtp(d)) return execute(d);
    totals.packets++;
    totals.bytes += d.length;
    const ssrc = d.readUInt32BE(8);
    const seq = d.readUInt16BE(2);
    const t = tracks.get(ssrc);
    if (!t) return void tracks.set(ssrc, { lastSeq: seq, packets: 1 });
    const step = (seq - t.lastSeq) & 0xffff;
    if (step === 0 || step > 0x8000) totals.reordered++;
    else {
      totals.missing += step - 1;
      t.lastSeq = seq;
    }
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not connected in 15 s (ICE ${pc.iceConnectionState}, connection ${pc.connectionState})`)), 15_000);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        clearTimeout(timer);
        resolve();
      }
      if (s === 'failed' || s === 'closed') totals.closed++;
    });
  });
  totals.connected++;
}

async function add(n: number): Promise<void> {
  // A few at a time: the edge answers each offer after gathering its candidates.
  for (let i = 0; i < n; i += 5) {
    await Promise.all(
      Array.from({ length: Math.min(5, n - i) }, () =>
        viewer().catch((err: Error) => {
          totals.failed++;
          process.stderr.write(`viewer failed: ${err.message}\n`);
        }),
      ),
    );
  }
  process.stdout.write(JSON.stringify({ added: n, ...totals }) + '\n');
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { add?: number };
  if (cmd.add) void add(cmd.add);
});
process.stdin.on('end', () => process.exit(0));
setInterval(() => {
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ ...totals, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
}, 1000);
