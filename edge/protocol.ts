/**
 * The WebSocket viewer protocol, as the edge speaks it and the player reads it:
 * binary messages are fMP4 (an init segment, then one moof+mdat per video frame),
 * text messages are these control messages, and a refusal or a move is a close code.
 */
import type { RelayError } from '../server/core/errors.ts';
import type { RenditionInfo } from '../server/core/bus/rendition-catalog.ts';

/** `GET /api/streams/<stream>`: what the player offers and the ABR chooses among. Types only: the player is bundled from this file. */
export type { RenditionInfo };
export interface StreamInfo {
  stream: string;
  renditions: RenditionInfo[];
}

export type RenditionState = 'connecting' | 'offline' | 'live' | 'ended';

/** Messages the player receives as JSON text. */
export type ControlMessage =
  | { type: 'status'; state: RenditionState; stream: string; rendition: string }
  | { type: 'init'; mime: string; width?: number; height?: number; timescales: Record<number, number>; metadata: Record<string, unknown> }
  | { type: 'error'; code: string; message: string }
  /** This edge's id, and the edges a player may ask for a route if this one fails. */
  | { type: 'hello'; edge: string; peers: string[] }
  /** Another edge serves this viewer: reconnect there. */
  | { type: 'redirect'; url: string; edge: string }
  /** This edge is going away (draining): route again, without it. */
  | { type: 'reconnect'; reason: string; edge?: string };

/** WebSocket close codes: a refusal closes with 4000 + its HTTP status. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  REDIRECT: 4302,
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  TOO_SLOW: 4408,
  NO_EDGE: 4503,
} as const;

/** The close code a refusal ends a viewer's WebSocket with: 4000 + the code's HTTP status. */
export function closeCodeFor(err: RelayError): number {
  return 4000 + err.status;
}
