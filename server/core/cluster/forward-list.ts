import { randomBytes } from 'node:crypto';
import { isWrongLastSequence, jetstream, Kvm, type KV, type NatsConnection } from '../bus/nats.ts';
import { parseForwardUrl } from '../config/forward-url.ts';
import { RelayError } from '../errors.ts';

/** A forward an operator added through the admin API: kept in NATS KV, so that whichever origin holds the stream applies it. */
export interface RuntimeForward {
  id: string;
  url: string;
  /** Wall-clock ms it was added. */
  addedAt: number;
}

/** Forwards added at run time, per stream, beside the configured ones (streams[].forward). */
export const MAX_RUNTIME_FORWARDS = 8;

/**
 * The forwards operators added at run time, one KV key per stream (a JSON list, changed by compare-and-set), so that
 * they outlive a publication, a takeover and a restart. Read by origins when a stream goes live and when told it
 * changed; written by the admin API on any node.
 */
export class ForwardList {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, bucket: string, replicas: number): Promise<ForwardList> {
    return new ForwardList(await new Kvm(jetstream(nc, { timeout: 2000 })).create(bucket, { history: 1, replicas }));
  }

  async get(stream: string): Promise<RuntimeForward[]> {
    return (await this.read(stream)).forwards;
  }

  /** Adds a forward (FORWARD_URL_INVALID for a URL that is not one, FORWARD_LIMIT past MAX_RUNTIME_FORWARDS). */
  async add(stream: string, url: string): Promise<RuntimeForward> {
    const target = parseForwardUrl(url);
    if (typeof target === 'string') throw new RelayError('FORWARD_URL_INVALID', target);
    const added: RuntimeForward = { id: randomBytes(6).toString('hex'), url, addedAt: Date.now() };
    await this.change(stream, (forwards) => {
      if (forwards.length >= MAX_RUNTIME_FORWARDS) throw new RelayError('FORWARD_LIMIT', `${MAX_RUNTIME_FORWARDS} forwards per stream at most`);
      return [...forwards, added];
    });
    return added;
  }

  /** Removes a forward; false when the stream has none with this id. */
  async remove(stream: string, id: string): Promise<boolean> {
    let found = false;
    await this.change(stream, (forwards) => {
      found = forwards.some((f) => f.id === id);
      return forwards.filter((f) => f.id !== id);
    });
    return found;
  }

  private async read(stream: string): Promise<{ forwards: RuntimeForward[]; revision: number }> {
    const entry = await this.kv.get(stream);
    if (!entry || entry.operation !== 'PUT') return { forwards: [], revision: entry?.revision ?? 0 };
    const value = entry.json<{ forwards?: RuntimeForward[] }>();
    return { forwards: Array.isArray(value.forwards) ? value.forwards : [], revision: entry.revision };
  }

  /** Compare-and-set, tried again when another node changed the list in between. */
  private async change(stream: string, edit: (forwards: RuntimeForward[]) => RuntimeForward[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const { forwards, revision } = await this.read(stream);
      const value = JSON.stringify({ forwards: edit(forwards) });
      try {
        await (revision === 0 ? this.kv.create(stream, value) : this.kv.update(stream, value, revision));
        return;
      } catch (err) {
        if (!isWrongLastSequence(err) || attempt >= 4) throw err;
      }
    }
  }
}
