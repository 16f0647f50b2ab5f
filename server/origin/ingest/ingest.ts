import type { RelayError } from '../../core/errors.ts';
import type { Frame } from '../../core/media/frame.ts';

/** The protocols publishers use; the label of ingest metrics and the node record. */
export type IngestProtocol = 'rtmp' | 'rtmps' | 'whip' | 'srt';

/** What an ingest adapter lets the origin do to its publisher's connection. */
export interface PublisherControl {
  /** Stop reading from the publisher (the bus is behind); `resume()` reads again. */
  pause(): void;
  resume(): void;
  /** End the connection, telling the publisher why in its protocol's way. */
  disconnect(reason: RelayError): void;
}

/** One publisher's stream, once the origin has made it the only one: frames in order, then one close. */
export interface IngestPublication {
  readonly stream: string;
  /** A frame, in decode order. */
  frame(frame: Frame): void;
  /** The publisher is gone (left, failed or disconnected): the stream ends on the bus and its lease is released. */
  close(reason?: RelayError): void;
}

export interface OpenRequest {
  stream: string;
  remote: string;
  protocol: IngestProtocol;
  control: PublisherControl;
}

/**
 * What the origin offers every ingest adapter, and all an adapter sees of it.
 * An adapter speaks its protocol, turns what it receives into frames and refuses
 * with a RelayError, rendered its protocol's way (an RTMP onStatus, an HTTP body).
 */
export interface IngestGateway {
  /** The stream a publish key (static or signed) opens. Throws STREAM_KEY_INVALID or STREAM_KEY_EXPIRED; logs without the key. */
  authenticate(key: string, context: { protocol: IngestProtocol; remote: string }): string;
  /**
   * Makes this publisher the stream's only one, on any origin: its lease, its bus
   * publication, its transcoding. Throws a RelayError to refuse (STREAM_ALREADY_PUBLISHING, ...).
   */
  open(request: OpenRequest): Promise<IngestPublication>;
  /** A publisher was refused (at any step): counted by protocol and stable code. */
  refused(protocol: IngestProtocol, reason: RelayError): void;
}

/** An ingest protocol's listener. The origin owns it: starts it, and closes it after its publishers. */
export interface IngestAdapter {
  readonly protocol: IngestProtocol;
  /** Listening and taking publishers (readiness). */
  readonly listening: boolean;
  start(): Promise<void>;
  close(): Promise<void>;
}
