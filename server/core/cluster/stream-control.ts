import type { NatsConnection } from '../bus/nats.ts';

/**
 * Operator commands to whichever origin publishes a stream, on plain NATS beside
 * the keyframe requests (never stored by the frame stream). Every origin listens;
 * only the one with the stream live answers.
 */
const endSubject = (prefix: string, stream: string) => `${prefix}_control.${stream}.end`;

export interface EndReply {
  ended: boolean;
  origin: string;
}

/** Asks the origin publishing `stream` to end it. Undefined when no origin answered in time. */
export async function requestEndStream(nc: NatsConnection, prefix: string, stream: string, reason: string, timeoutMs = 2000): Promise<EndReply | undefined> {
  try {
    const reply = await nc.request(endSubject(prefix, stream), JSON.stringify({ reason }), { timeout: timeoutMs });
    return reply.json<EndReply>();
  } catch {
    return undefined; // no responders, or a timeout
  }
}

/** Serves end requests for every stream: `end` ends it if live here and says whether it did. Returns the unsubscribe. */
export function serveStreamControl(nc: NatsConnection, prefix: string, origin: string, end: (stream: string, reason: string) => boolean): () => void {
  const sub = nc.subscribe(`${prefix}_control.*.end`, {
    callback: (err, msg) => {
      if (err) return;
      const stream = msg.subject.slice(prefix.length + '_control.'.length, -'.end'.length);
      let reason = 'ended by an operator';
      try {
        const body = msg.json<{ reason?: unknown }>();
        if (typeof body.reason === 'string' && body.reason) reason = body.reason.slice(0, 200);
      } catch {
        // no body: the default reason
      }
      if (end(stream, reason)) msg.respond(JSON.stringify({ ended: true, origin } satisfies EndReply));
    },
  });
  return () => sub.unsubscribe();
}

const originCommandSubject = (prefix: string, stream: string, verb: string) => `${prefix}_control.${stream}.${verb}`;

/** A command the origin holding `stream` answers once it has acted; undefined when none answered in time. */
async function requestOriginCommand(nc: NatsConnection, prefix: string, stream: string, verb: string, timeoutMs: number): Promise<EndReply | undefined> {
  try {
    const reply = await nc.request(originCommandSubject(prefix, stream, verb), '', { timeout: timeoutMs });
    return reply.json<EndReply>();
  } catch {
    return undefined; // no responders, or a timeout
  }
}

/** Serves one command for every stream: `act` resolves true once it acted on the stream, live here. Returns the unsubscribe. */
function serveOriginCommand(
  nc: NatsConnection,
  prefix: string,
  origin: string,
  verb: string,
  ended: boolean,
  act: (stream: string) => Promise<boolean>,
): () => void {
  const sub = nc.subscribe(originCommandSubject(prefix, '*', verb), {
    callback: (err, msg) => {
      if (err) return;
      const stream = msg.subject.slice(prefix.length + '_control.'.length, -(verb.length + 1));
      void act(stream).then(
        (acted) => acted && msg.respond(JSON.stringify({ ended, origin } satisfies EndReply)),
        () => {},
      );
    },
  });
  return () => sub.unsubscribe();
}

/**
 * Asks the origin publishing `stream` to let a new publisher with the stream's key
 * take it over: it disconnects its publisher (PUBLISHER_REPLACED), stores the end
 * marker and releases the lease, and only then answers. Undefined when no origin
 * answered (none has the stream live, or the one holding it is gone: its lease expires).
 */
export function requestTakeover(nc: NatsConnection, prefix: string, stream: string, timeoutMs = 3000): Promise<EndReply | undefined> {
  return requestOriginCommand(nc, prefix, stream, 'takeover', timeoutMs);
}

/** Serves takeover requests: `release` resolves true once the stream, live here, has been let go. Returns the unsubscribe. */
export function serveTakeovers(nc: NatsConnection, prefix: string, origin: string, release: (stream: string) => Promise<boolean>): () => void {
  return serveOriginCommand(nc, prefix, origin, 'takeover', true, release);
}

const recordSubject = (prefix: string, stream: string) => `${prefix}_control.${stream}.record`;

/** What an operator asks of recorders for one publication of a stream. */
export interface RecordRequest {
  record: boolean;
  /** The publication (its lease token): the request holds for it only; the next follows the configuration. */
  token: number;
}

export interface RecordReply {
  recorder: string;
  /** The recording being made (start), or the one just ended (stop). */
  recording?: string | undefined;
}

/**
 * Asks recorders to start (or stop) recording a live stream's current publication. Every recorder hears it; the one
 * that records the stream (or, to start, takes it) answers. Undefined when none answered in time.
 */
export async function requestRecording(
  nc: NatsConnection,
  prefix: string,
  stream: string,
  request: RecordRequest,
  timeoutMs: number,
): Promise<RecordReply | undefined> {
  try {
    const reply = await nc.request(recordSubject(prefix, stream), JSON.stringify(request), { timeout: timeoutMs });
    return reply.json<RecordReply>();
  } catch {
    return undefined;
  }
}

/** Serves recording requests: `handle` resolves the reply when this recorder acted, undefined when another did. Returns the unsubscribe. */
export function serveRecordingControl(
  nc: NatsConnection,
  prefix: string,
  handle: (stream: string, request: RecordRequest) => Promise<RecordReply | undefined>,
): () => void {
  const sub = nc.subscribe(`${prefix}_control.*.record`, {
    callback: (err, msg) => {
      if (err) return;
      const stream = msg.subject.slice(prefix.length + '_control.'.length, -'.record'.length);
      let request: RecordRequest;
      try {
        const body = msg.json<Partial<RecordRequest>>();
        if (typeof body.record !== 'boolean' || typeof body.token !== 'number') return;
        request = { record: body.record, token: body.token };
      } catch {
        return;
      }
      void handle(stream, request).then(
        (reply) => reply && msg.respond(JSON.stringify(reply)),
        () => {},
      );
    },
  });
  return () => sub.unsubscribe();
}

/** Tells the origin publishing `stream` that its run-time forwards changed: the origin that applied them, or undefined (not live). */
export async function requestForwardsChanged(nc: NatsConnection, prefix: string, stream: string, timeoutMs = 3000): Promise<string | undefined> {
  return (await requestOriginCommand(nc, prefix, stream, 'forwards', timeoutMs))?.origin;
}

/** Serves forward changes: `apply` resolves true once the stream, live here, forwards to its list as it is now. Returns the unsubscribe. */
export function serveForwardChanges(nc: NatsConnection, prefix: string, origin: string, apply: (stream: string) => Promise<boolean>): () => void {
  return serveOriginCommand(nc, prefix, origin, 'forwards', false, apply);
}
