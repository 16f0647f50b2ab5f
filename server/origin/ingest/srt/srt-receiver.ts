import { ControlType, SrtCommand, seqAdd, seqDiff, writeControl, writeLossList, type ControlPacket, type DataPacket } from './srt-packet.ts';
import { readKeyingMaterial, SrtCryptoError, type SrtDecryptor } from './srt-crypto.ts';

export interface ReceiverOptions {
  /** The sender's initial sequence number: the first packet to deliver. */
  isn: number;
  /** TSBPD latency (ms): each packet is delivered this long after its send time, and given up after. */
  latencyMs: number;
  /** The peer's socket id (the destination of our control packets). */
  peerSocketId: number;
  /** Our clock (ms) when the connection started: our control packets' timestamps count from it. */
  startTime: number;
  /** Our clock (ms) at the sender's timestamp 0, from the conclusion handshake's timestamp. */
  peerStart: number;
  /** Sends a control packet to the peer. */
  send: (packet: Buffer) => void;
  /** A payload, in order, at its TSBPD time. */
  deliver: (payload: Buffer) => void;
  /** Packets given up (lost and too late to wait for): the data delivered next does not follow the last. */
  lost: (count: number) => void;
  /** Decrypts encrypted payloads (the keys of the handshake); with `passphrase`, a refreshed KMREQ is read too. */
  decryptor?: SrtDecryptor;
  passphrase?: string;
  /** Packets the receive buffer holds (the flow window the ACKs advertise). */
  bufferPackets?: number;
}

export interface ReceiverStats {
  packets: number;
  bytes: number;
  /** Packets found missing (each counted once, when its gap was seen). */
  lost: number;
  /** Packets that came flagged as retransmissions. */
  retransmitted: number;
  /** Packets given up: not there at their delivery time (too late). */
  dropped: number;
  /** Packets that came twice, or after their time. */
  duplicates: number;
  /** Encrypted packets that could not be decrypted (no key). */
  undecryptable: number;
  naksSent: number;
  acksSent: number;
  /** Smoothed round-trip time and its variation (microseconds), from ACK/ACKACK. */
  rttUs: number;
  rttVarUs: number;
  /** The most a packet was delivered after its TSBPD time (ms): the receiver's own delay beyond the latency. */
  maxLateMs: number;
  /** How far the time base has followed the sender's clock (ms; positive: the sender's clock runs slow). */
  driftMs: number;
}

/** SRT's SYN interval: a full ACK at most this often. */
const ACK_INTERVAL_MS = 10;
const MIN_NAK_INTERVAL_MS = 20;
const KEEPALIVE_MS = 1000;
const TS_WRAP = 2 ** 32;
const KM_STATE_BADSECRET = 4;
/** Clock drift: packets averaged per estimate, and the drift that moves the time base (libsrt's DriftTracer: 1000, 5 ms). */
const DRIFT_SAMPLES = 1000;
const DRIFT_MAX_MS = 5;

/**
 * The receiving side of one SRT connection in live mode (the Internet-Draft's 4.5,
 * 4.8, 4.10): packets are buffered by sequence number and delivered in order at
 * their TSBPD time (the sender's timestamp + the latency); a gap is reported at
 * once (NAK) and again every NAK interval while it lasts; a packet still missing
 * when a later one is due is given up (too-late drop). A full ACK goes out every
 * 10 ms while data comes; the sender's ACKACK gives the round-trip time.
 *
 * Pure: packets and times in, through `data`, `control` and `tick`; control packets
 * and payloads out, through the callbacks.
 */
export class SrtReceiver {
  readonly stats: ReceiverStats = {
    packets: 0,
    bytes: 0,
    lost: 0,
    retransmitted: 0,
    dropped: 0,
    duplicates: 0,
    undecryptable: 0,
    naksSent: 0,
    acksSent: 0,
    rttUs: 100_000,
    rttVarUs: 50_000,
    maxLateMs: 0,
    driftMs: 0,
  };
  private readonly capacity: number;
  private readonly slots: (Buffer | undefined)[];
  /** Send time of each buffered packet, microseconds since the peer's start, unwrapped. */
  private readonly times: Float64Array;
  /** The next sequence number to deliver. */
  private head: number;
  /** The highest sequence number received; head - 1 before any. */
  private top: number;
  /** Missing sequence numbers: start -> end of each range (inclusive), and when each was last reported. */
  private readonly losses = new Map<number, { end: number; reportedAt: number }>();
  private lastTimestamp: number | undefined;
  private lastAckAt = -Infinity;
  private lastAcked = -1;
  private ackNumber = 0;
  /** ACK number -> when it was sent, for the round trip (a small ring). */
  private readonly ackSentAt = new Float64Array(64);
  private readonly ackIds = new Int32Array(64).fill(-1);
  /** Our clock (ms) at the sender's timestamp 0: from the handshake, then moved with the sender's clock drift. */
  private peerStart: number;
  /** First-time packets' (arrival - send time) since the last estimate, and how many. */
  private driftSum = 0;
  private driftCount = 0;
  private lastNakAt = -Infinity;
  private rttMeasured = false;
  private lastSentAt = -Infinity;
  /** Packets received since the last rate sample, for the ACK's receiving rate. */
  private rateCount = 0;
  private rateBytes = 0;
  private rateFrom: number;
  private packetRate = 0;
  private byteRate = 0;

  constructor(private readonly options: ReceiverOptions) {
    this.capacity = options.bufferPackets ?? 8192;
    // A power of two divides the 2^31 sequence space: slots stay in step across the wrap.
    if (this.capacity & (this.capacity - 1)) throw new RangeError(`bufferPackets must be a power of two: ${this.capacity}`);
    this.slots = new Array<Buffer | undefined>(this.capacity);
    this.times = new Float64Array(this.capacity);
    this.head = options.isn;
    this.top = seqAdd(options.isn, -1);
    this.rateFrom = options.startTime;
    this.peerStart = options.peerStart;
  }

  /** Packets buffered, waiting for their time. */
  get buffered(): number {
    return Math.max(0, seqDiff(this.top, this.head) + 1);
  }

  data(packet: DataPacket, now: number): void {
    this.stats.packets++;
    this.stats.bytes += packet.payload.length;
    this.rateCount++;
    this.rateBytes += packet.payload.length;
    if (packet.retransmitted) this.stats.retransmitted++;
    const offset = seqDiff(packet.seq, this.head);
    if (offset < 0 || offset >= this.capacity) {
      // Already delivered or given up, or further ahead than the buffer (the sender ignores our window).
      this.stats.duplicates++;
      return;
    }
    const slot = packet.seq % this.capacity;
    if (this.slots[slot] !== undefined) {
      this.stats.duplicates++;
      return;
    }
    let payload = packet.payload;
    if (packet.key !== 0) {
      const clear = this.options.decryptor?.decrypt(packet.seq, packet.key, payload);
      if (!clear) {
        this.stats.undecryptable++;
        return;
      }
      payload = clear;
    }
    this.slots[slot] = payload;
    const sent = this.unwrap(packet.timestamp);
    this.times[slot] = sent;
    if (!packet.retransmitted) this.trackDrift(now - (this.peerStart + sent / 1000));
    const ahead = seqDiff(packet.seq, this.top);
    if (ahead > 1) {
      // A gap: report it now.
      const first = seqAdd(this.top, 1);
      const last = seqAdd(packet.seq, -1);
      this.losses.set(first, { end: last, reportedAt: now });
      this.stats.lost += ahead - 1;
      this.sendNak([[first, last]], now);
    } else if (ahead <= 0) {
      this.filled(packet.seq);
    }
    if (ahead > 0) this.top = packet.seq;
  }

  /** A control packet from the peer; 'shutdown' when it ended the connection. */
  control(packet: ControlPacket, now: number): 'shutdown' | undefined {
    switch (packet.type) {
      case ControlType.ACKACK:
        this.ackAcked(packet.info, now);
        break;
      case ControlType.SHUTDOWN:
        return 'shutdown';
      case ControlType.DROPREQ: {
        // The sender gave these up: stop asking for them (they are skipped at their time).
        if (packet.body.length >= 8) this.forget(packet.body.readUInt32BE(0) & 0x7fffffff, packet.body.readUInt32BE(4) & 0x7fffffff);
        break;
      }
      case ControlType.USER:
        if (packet.subtype === SrtCommand.KMREQ) this.keyRefresh(packet.body, now);
        break;
      default:
        break; // KEEPALIVE and the rest: being heard is enough
    }
    return undefined;
  }

  /** Delivers what is due, gives up what is too late, and sends ACK, periodic NAK and keepalive as their times come. */
  tick(now: number): void {
    this.deliverDue(now);
    if (now - this.lastAckAt >= ACK_INTERVAL_MS) this.ack(now);
    // Half the retransmission timeout (RTT + 4 RTTVar), as libsrt; and at most a quarter of the latency, so that a
    // lost packet is asked for several times before its time comes, whatever the RTT estimate says.
    const nakInterval = Math.max(MIN_NAK_INTERVAL_MS, Math.min((this.stats.rttUs + 4 * this.stats.rttVarUs) / 1000 / 2, this.options.latencyMs / 4));
    if (this.losses.size > 0 && now - this.lastNakAt >= nakInterval) {
      const due: [number, number][] = [];
      for (const [start, loss] of this.losses) {
        if (now - loss.reportedAt < nakInterval) continue;
        due.push([start, loss.end]);
        loss.reportedAt = now;
        if (due.length >= 150) break; // one packet's worth
      }
      if (due.length > 0) this.sendNak(due, now);
    }
    if (now - this.lastSentAt >= KEEPALIVE_MS) this.sendControl(ControlType.KEEPALIVE, 0, 0, now);
  }

  /**
   * The caller closed the connection: what it sent last is still waiting for its time
   * (the latency); it is delivered now, in order, rather than lost with the connection.
   */
  drain(): void {
    this.deliverDue(Infinity);
  }

  /** Tells the peer the connection is over. */
  shutdown(now: number): void {
    this.sendControl(ControlType.SHUTDOWN, 0, 0, now, Buffer.alloc(4));
  }

  private deliverDue(now: number): void {
    const latencyUs = this.options.latencyMs * 1000;
    for (;;) {
      if (seqDiff(this.top, this.head) < 0) return; // nothing buffered
      const slot = this.head % this.capacity;
      const payload = this.slots[slot];
      if (payload !== undefined) {
        const due = this.dueAt(this.times[slot]!, latencyUs);
        if (due > now) return;
        if (now !== Infinity && now - due > this.stats.maxLateMs) this.stats.maxLateMs = now - due;
        this.slots[slot] = undefined;
        this.head = seqAdd(this.head, 1);
        this.options.deliver(payload);
        continue;
      }
      // A hole at the head: wait for it while the next packet that is here is not due.
      let next = this.head;
      let found = false;
      for (let i = 0, n = seqDiff(this.top, this.head); i <= n; i++, next = seqAdd(next, 1)) {
        if (this.slots[next % this.capacity] !== undefined) {
          found = true;
          break;
        }
      }
      if (!found || this.dueAt(this.times[next % this.capacity]!, latencyUs) > now) return;
      const skipped = seqDiff(next, this.head);
      this.forget(this.head, seqAdd(next, -1));
      this.head = next;
      this.stats.dropped += skipped;
      this.options.lost(skipped);
    }
  }

  private dueAt(timestampUs: number, latencyUs: number): number {
    return this.peerStart + (timestampUs + latencyUs) / 1000;
  }

  /**
   * The sender's clock runs at its own rate: 50 ppm apart is 180 ms an hour, which would grow or eat
   * the latency. Every 1000 first-time packets, the average of (arrival - send time) against the time
   * base says how far the clocks have moved apart; past 5 ms the base follows (as libsrt's DriftTracer).
   */
  private trackDrift(sample: number): void {
    this.driftSum += sample;
    if (++this.driftCount < DRIFT_SAMPLES) return;
    const drift = this.driftSum / this.driftCount;
    this.driftSum = 0;
    this.driftCount = 0;
    if (Math.abs(drift) <= DRIFT_MAX_MS) return;
    this.peerStart += drift;
    this.stats.driftMs += drift;
  }

  /** The peer's 32-bit microsecond timestamp, placed next to the last one (it wraps every 71 minutes). */
  private unwrap(timestamp: number): number {
    const last = this.lastTimestamp;
    const value = last === undefined ? timestamp : timestamp + Math.round((last - timestamp) / TS_WRAP) * TS_WRAP;
    if (last === undefined || value > last) this.lastTimestamp = value;
    return value;
  }

  /** A retransmission filled `seq`: take it out of its loss range. */
  private filled(seq: number): void {
    for (const [start, loss] of this.losses) {
      if (seqDiff(seq, start) < 0 || seqDiff(seq, loss.end) > 0) continue;
      this.losses.delete(start);
      if (seq !== start) this.losses.set(start, { end: seqAdd(seq, -1), reportedAt: loss.reportedAt });
      if (seq !== loss.end) this.losses.set(seqAdd(seq, 1), { end: loss.end, reportedAt: loss.reportedAt });
      return;
    }
  }

  /** Stops reporting `first`..`last` as lost. */
  private forget(first: number, last: number): void {
    for (const [start, loss] of [...this.losses]) {
      if (seqDiff(loss.end, first) < 0 || seqDiff(start, last) > 0) continue;
      this.losses.delete(start);
      if (seqDiff(start, first) < 0) this.losses.set(start, { end: seqAdd(first, -1), reportedAt: loss.reportedAt });
      if (seqDiff(loss.end, last) > 0) this.losses.set(seqAdd(last, 1), { end: loss.end, reportedAt: loss.reportedAt });
    }
  }

  private ack(now: number): void {
    // Everything before the first missing packet has come.
    let ackSeq = seqAdd(this.top, 1);
    for (const start of this.losses.keys()) if (seqDiff(start, ackSeq) < 0) ackSeq = start;
    if (seqDiff(ackSeq, this.head) < 0) ackSeq = this.head;
    const elapsed = now - this.rateFrom;
    if (elapsed >= 1000) {
      this.packetRate = Math.round((this.rateCount * 1000) / elapsed);
      this.byteRate = Math.round((this.rateBytes * 1000) / elapsed);
      this.rateCount = 0;
      this.rateBytes = 0;
      this.rateFrom = now;
    }
    if (ackSeq === this.lastAcked) return; // nothing new since the last ACK
    this.lastAcked = ackSeq;
    this.lastAckAt = now;
    const id = (this.ackNumber = (this.ackNumber + 1) & 0x7fffffff);
    this.ackIds[id & 63] = id;
    this.ackSentAt[id & 63] = now;
    const body = Buffer.allocUnsafe(28);
    body.writeUInt32BE(ackSeq, 0);
    body.writeUInt32BE(Math.round(this.stats.rttUs), 4);
    body.writeUInt32BE(Math.round(this.stats.rttVarUs), 8);
    body.writeUInt32BE(Math.max(2, this.capacity - this.buffered), 12);
    body.writeUInt32BE(this.packetRate, 16);
    body.writeUInt32BE(this.packetRate, 20); // link capacity: not probed; the receiving rate stands in
    body.writeUInt32BE(this.byteRate, 24);
    this.stats.acksSent++;
    this.sendControl(ControlType.ACK, 0, id, now, body);
  }

  private ackAcked(id: number, now: number): void {
    if (this.ackIds[id & 63] !== id) return;
    this.ackIds[id & 63] = -1;
    const sample = (now - this.ackSentAt[id & 63]!) * 1000;
    const s = this.stats;
    if (!this.rttMeasured) {
      // The first sample replaces the initial guess (100 ms): smoothing from it took a second or more,
      // and the NAK interval, which follows the RTT, stayed longer than the latency meanwhile.
      this.rttMeasured = true;
      s.rttUs = sample;
      s.rttVarUs = sample / 2;
      return;
    }
    s.rttVarUs = (3 * s.rttVarUs + Math.abs(s.rttUs - sample)) / 4;
    s.rttUs = (7 * s.rttUs + sample) / 8;
  }

  private sendNak(ranges: [number, number][], now: number): void {
    this.stats.naksSent++;
    this.lastNakAt = now;
    this.sendControl(ControlType.NAK, 0, 0, now, writeLossList(ranges));
  }

  /** A KMREQ after the handshake (the sender refreshing its keys): take the keys and answer with the same message, or with BADSECRET. */
  private keyRefresh(km: Buffer, now: number): void {
    const { decryptor, passphrase } = this.options;
    if (!decryptor || passphrase === undefined) return;
    let answer: Buffer = km;
    try {
      decryptor.update(readKeyingMaterial(km, passphrase));
    } catch (err) {
      if (!(err instanceof SrtCryptoError)) throw err;
      answer = Buffer.alloc(4);
      answer.writeUInt32BE(KM_STATE_BADSECRET);
    }
    this.sendControl(ControlType.USER, SrtCommand.KMRSP, 0, now, answer);
  }

  private sendControl(type: number, subtype: number, info: number, now: number, body?: Buffer): void {
    this.lastSentAt = now;
    const timestamp = Math.round((now - this.options.startTime) * 1000) % TS_WRAP;
    this.options.send(writeControl(type, subtype, info, timestamp, this.options.peerSocketId, body));
  }
}
