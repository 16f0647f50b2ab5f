import type { NatsConnection } from './nats.ts';

/**
 * Keyframe requests from edges to the origin publishing a stream, on plain NATS
 * (not JetStream: a request is worth nothing later). Only a source that can make
 * a keyframe on demand acts on it: a WHIP publisher, asked by RTCP PLI. The
 * subject's first tokens differ from the frame subjects', so the frame stream
 * never stores these.
 */
export function keyframeRequestSubject(prefix: string, stream: string): string {
  return `${prefix}_control.${stream}.keyframe`;
}

export function requestKeyframe(nc: NatsConnection, prefix: string, stream: string): void {
  try {
    nc.publish(keyframeRequestSubject(prefix, stream));
  } catch {
    // NATS is reconnecting: the viewer waits for the next keyframe the publisher sends anyway
  }
}

/** Calls `handler` on each request for `stream`; returns the unsubscribe. */
export function onKeyframeRequest(nc: NatsConnection, prefix: string, stream: string, handler: () => void): () => void {
  const sub = nc.subscribe(keyframeRequestSubject(prefix, stream), { callback: () => handler() });
  return () => sub.unsubscribe();
}
