/**
 * The NATS adapter: the only file that imports nats.js (the `@nats-io/*` v3
 * packages; a test holds every other file to that). What the relay relies on of
 * nats.js and nats-server is here: connections and their options, credentials,
 * how a JetStream ack and an API error look on the wire. The rest of the code
 * uses what this file exports.
 */
import { readFileSync } from 'node:fs';
import {
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type TlsOptions,
} from '@nats-io/nats-core';
import { createInbox } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';

export type { NatsConnection };
export { nanos, type Msg, type Subscription } from '@nats-io/nats-core';
export {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
export { Kvm, type KV } from '@nats-io/kv';
export { Objm, type ObjectStore } from '@nats-io/obj';

/**
 * A JetStream API error "wrong last sequence" (10071): a compare-and-set on a KV key
 * (create, update or delete at a revision) lost to another writer.
 */
export function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: number | string; api_error?: { err_code?: number }; message?: string } | undefined;
  return e?.api_error?.err_code === 10071 || e?.code === 10071 || /wrong last sequence/i.test(e?.message ?? '');
}

/**
 * A JetStream publish ack, read without parsing JSON: `{"stream":..,"seq":..}` when
 * stored; `{"error":..}`, or an empty 503 status (no stream bound), when not.
 */
export function isStoredAck(data: Uint8Array): boolean {
  return data.length > 2 && data[2] !== 0x65; // {"e...: an error
}

const SEQ_KEY = [0x22, 0x73, 0x65, 0x71, 0x22, 0x3a]; // "seq":

/** The stream sequence in a stored JetStream publish ack (`{"stream":"..","seq":123}`), read without parsing JSON or allocating; 0 when absent. */
export function storedAckSeq(data: Uint8Array): number {
  const last = data.length - SEQ_KEY.length;
  let at = -1;
  for (let i = 0; i <= last && at < 0; i++) {
    let j = 0;
    while (j < SEQ_KEY.length && data[i + j] === SEQ_KEY[j]) j++;
    if (j === SEQ_KEY.length) at = i + j;
  }
  if (at < 0) return 0;
  let seq = 0;
  for (let i = at; i < data.length; i++) {
    const c = data[i]!;
    if (c === 0x20) continue;
    if (c < 0x30 || c > 0x39) break;
    seq = seq * 10 + (c - 0x30);
  }
  return seq;
}

/**
 * Purges a JetStream stream's messages on `filter` below sequence `beforeSeq` (the JetStream API's
 * purge request with a filter and a sequence): one stream's frames trimmed out of a shared shard.
 */
export async function purgeSubjectBefore(nc: NatsConnection, jsStream: string, filter: string, beforeSeq: number): Promise<number> {
  // Nothing comes before sequence 1; and nats-server reads a sequence of 0 or 1 as no bound at all: it would purge every
  // message on the filter (a CI run lost a whole stream that way when its first keyframe was the frame stream's first message).
  if (beforeSeq <= 1) return 0;
  const reply = await nc.request(`$JS.API.STREAM.PURGE.${jsStream}`, JSON.stringify({ filter, seq: beforeSeq }), { timeout: 5000 });
  const answer = reply.json<{ success?: boolean; purged?: number; error?: { description?: string } }>();
  if (answer.error) throw new Error(`purge of ${filter} in ${jsStream}: ${answer.error.description ?? 'refused'}`);
  return answer.purged ?? 0;
}

/** A new inbox subject under the connection's own inbox prefix (set when the server requires one). */
export function newInbox(nc: NatsConnection): string {
  return createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
}

const connected = new WeakMap<NatsConnection, boolean>();

/** Connected right now (not closed, not between a disconnect and a reconnect): for /readyz. */
export function isNatsConnected(nc: NatsConnection): boolean {
  return !nc.isClosed() && connected.get(nc) === true;
}

/** How the relay proves itself to an external NATS: `nats.auth` and `nats.tls`. */
export type NatsSecurity = Pick<RelayConfig['nats'], 'auth' | 'tls'>;

function readSecretFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new RelayError('CONFIG_INVALID', `${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The nats.js connection options for `security` (files are read now, so a bad path fails at start). */
export function securityOptions(security: NatsSecurity | undefined): { authenticator?: Authenticator; tls?: TlsOptions } {
  if (!security) return {};
  const { auth, tls } = security;
  let authenticator: Authenticator | undefined;
  if (auth.user) authenticator = usernamePasswordAuthenticator(auth.user, auth.password);
  else if (auth.token) authenticator = tokenAuthenticator(auth.token);
  else if (auth.nkeySeedFile) {
    const seed = readSecretFile('nats.auth.nkeySeedFile', auth.nkeySeedFile).toString('utf8').trim();
    if (!/^SU[A-Z2-7]+$/.test(seed))
      throw new RelayError('CONFIG_INVALID', `nats.auth.nkeySeedFile: ${auth.nkeySeedFile} does not hold a user NKey seed (SU...)`);
    authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  } else if (auth.credsFile) authenticator = credsAuthenticator(new Uint8Array(readSecretFile('nats.auth.credsFile', auth.credsFile)));
  const files = { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile };
  for (const [name, file] of Object.entries(files)) if (file) readSecretFile(`nats.tls.${name}`, file);
  const useTls = Object.values(files).some(Boolean);
  return {
    ...(authenticator && { authenticator }),
    ...(useTls && { tls: Object.fromEntries(Object.entries(files).filter(([, f]) => f)) }),
  };
}

/** nats.js's refusal of our credentials, as opposed to a server out of reach. */
const isAuthError = (err: unknown) =>
  /authorization violation|authentication (timeout|expired)|user authentication/i.test(String((err as Error)?.message ?? err));

/**
 * Connects with endless reconnects (a relay outlives NATS restarts) and logs
 * status changes. `name` shows in the server's connection list.
 */
export async function connectNats(url: string, name: string, log: Logger, timeoutMs = 10_000, security?: NatsSecurity): Promise<NatsConnection> {
  const servers = url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const secured = securityOptions(security);
  // Our own first-connect loop, not nats.js's waitOnFirstConnect: that one retries a
  // TLS failure forever. Here a refusal of our credentials fails at once, anything
  // else is retried until `timeoutMs` and then reported with its last cause.
  const deadline = Date.now() + timeoutMs;
  let nc: NatsConnection | undefined;
  while (!nc) {
    try {
      nc = await connect({
        ...secured,
        servers,
        name,
        timeout: Math.max(500, Math.min(2000, deadline - Date.now())),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: 10_000,
        waitOnFirstConnect: false,
      });
    } catch (err) {
      if (isAuthError(err))
        throw new RelayError('BUS_AUTH_FAILED', `NATS at ${servers.join(', ')} refused the credentials (nats.auth): ${(err as Error).message}`, { cause: err });
      if (Date.now() + 250 >= deadline) {
        throw new RelayError('BUS_UNAVAILABLE', `cannot connect to NATS at ${servers.join(', ')} within ${timeoutMs} ms: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  connected.set(nc, true);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected.set(nc, false);
      else if (s.type === 'reconnect') connected.set(nc, true);
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
        log.warn({ connection: name, status: s.type, server: 'server' in s ? s.server : undefined }, 'NATS connection status');
    }
  })().catch(() => {});
  return nc;
}
