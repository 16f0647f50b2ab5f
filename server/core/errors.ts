/**
 * One catalogue of the errors a client or an operator can see. Codes are stable:
 * operators grep logs for them, clients branch on them (RTMP status descriptions,
 * WebSocket close reasons, HTTP bodies).
 */
export const ErrorCodes = {
  CONFIG_INVALID: { status: 500, message: 'configuration is invalid' },
  CONFIG_INSECURE: { status: 500, message: 'production mode refuses empty or example secrets' },
  STREAM_NAME_INVALID: { status: 400, message: 'stream names are 1-64 characters of A-Z, a-z, 0-9, _ and -' },
  STREAM_UNKNOWN: { status: 404, message: 'no such stream is configured' },
  STREAM_KEY_INVALID: { status: 403, message: 'the stream key is not valid' },
  STREAM_KEY_EXPIRED: { status: 403, message: 'the signed stream key has expired' },
  PLAYBACK_TOKEN_REQUIRED: { status: 401, message: 'this relay requires a playback token (?token=)' },
  PLAYBACK_TOKEN_INVALID: { status: 403, message: 'the playback token is not valid for this stream' },
  PLAYBACK_TOKEN_EXPIRED: { status: 403, message: 'the playback token has expired' },
  STREAM_ALREADY_PUBLISHING: { status: 409, message: 'the stream already has a live publisher' },
  PUBLISHER_REPLACED: { status: 409, message: 'another publisher with the stream key took the stream over' },
  LEASE_LOST: { status: 503, message: 'this origin could not renew its lease on the stream in time and stopped publishing it' },
  NO_EDGE_AVAILABLE: { status: 503, message: 'no edge has room for this viewer' },
  RTMP_APP_UNKNOWN: { status: 404, message: 'unknown RTMP application' },
  RTMP_PLAY_REFUSED: { status: 405, message: 'this server does not play RTMP; watch over HTTP instead' },
  RTMP_PROTOCOL_ERROR: { status: 400, message: 'malformed RTMP or FLV data' },
  RTMP_HANDSHAKE_TIMEOUT: { status: 408, message: 'the RTMP handshake did not finish in time' },
  SRT_STREAMID_INVALID: { status: 400, message: 'the SRT stream id must carry the stream key: streamid=<key>, or #!::r=<key>,m=publish' },
  SRT_MODE_UNSUPPORTED: { status: 405, message: 'this relay takes SRT publishers only (m=publish); watch over HTTP' },
  SRT_PASSPHRASE_INVALID: { status: 403, message: "the SRT passphrase is not the listener's (srt.passphrase)" },
  SRT_ENCRYPTION_MISMATCH: { status: 403, message: 'SRT encryption must be on at both ends or at neither (srt.passphrase)' },
  SRT_HANDSHAKE_UNSUPPORTED: {
    status: 400,
    message: 'the SRT caller asked for what the relay does not do (a handshake before SRT 1.3, file mode, packet filters, bonding, AES-GCM)',
  },
  SRT_TOO_MANY_CONNECTIONS: { status: 503, message: 'too many SRT callers (srt.maxConnections)' },
  SRT_PEER_IDLE: { status: 408, message: 'the SRT caller sent nothing for too long (srt.idleTimeoutMs)' },
  PUBLISHER_SILENT: { status: 408, message: 'the publisher sent no media for too long (rtmp.mediaTimeoutMs, srt.mediaTimeoutMs)' },
  RTMP_TOO_MANY_CONNECTIONS: { status: 503, message: 'too many RTMP connections' },
  TLS_HANDSHAKE_FAILED: { status: 400, message: 'the TLS handshake failed (not TLS, a certificate the client refused, or too slow)' },
  TOO_MANY_CONNECTIONS: { status: 429, message: 'too many connections from this address' },
  CODEC_UNSUPPORTED: { status: 415, message: 'the codec is not supported' },
  BUS_PUBLISH_FAILED: { status: 503, message: 'a frame could not be stored in JetStream' },
  BUS_TRIM_FAILED: { status: 503, message: "a stream's frames older than its retention could not be purged from the bus" },
  BUS_MESSAGE_INVALID: { status: 502, message: 'a message on the bus is not a frame this relay can read' },
  BUS_UNAVAILABLE: { status: 503, message: 'NATS is not reachable' },
  BUS_AUTH_FAILED: { status: 503, message: "NATS refused the relay's credentials (nats.auth)" },
  TRANSCODE_BEHIND: { status: 503, message: 'ffmpeg could not keep up with real time; a rung was shed' },
  FORWARD_URL_INVALID: { status: 400, message: 'a forward URL is rtmp://host/app/key, rtmps://host/app/key or srt://host:port?streamid=...' },
  FORWARD_LIMIT: { status: 409, message: 'the stream has as many forwards added at run time as it may' },
  FORWARD_UNKNOWN: { status: 404, message: 'the stream has no forward with this id' },
  FORWARD_FAILED: { status: 502, message: 'forwarding the stream to another server (streams[].forward) stopped; it is tried again from the next keyframe' },
  VIEWER_TOO_SLOW: { status: 408, message: 'the viewer stayed too far behind live and was disconnected' },
  SDP_INVALID: { status: 400, message: 'the SDP offer cannot be read' },
  CONTENT_TYPE_INVALID: { status: 415, message: 'WHIP and WHEP take an SDP offer as application/sdp' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  AUTH_REQUIRED: { status: 401, message: 'a bearer token is required (Authorization: Bearer <token>)' },
  STREAM_OFFLINE: { status: 404, message: 'the stream is not live' },
  HLS_NOT_FOUND: { status: 404, message: 'no such HLS part, segment or init segment (it expired, or was never made)' },
  HLS_REQUEST_TOO_FAR: { status: 400, message: '_HLS_msn is more than two segments past the end of the playlist' },
  HLS_NOT_READY: { status: 503, message: 'what the HLS request waited for did not come in time' },
  WEBRTC_UNAVAILABLE: {
    status: 409,
    message: 'the stream has no WebRTC-safe rendition (H.264 without B-frames and Opus): turn transcoding on for it, or publish by WHIP',
  },
  SESSION_UNKNOWN: { status: 404, message: 'no such WHIP or WHEP session' },
  TRICKLE_UNSUPPORTED: { status: 405, message: 'trickle ICE and ICE restarts are not supported: the answer carries every candidate' },
  NOT_FOUND: { status: 404, message: 'not found' },
  INTERNAL: { status: 500, message: 'an unexpected error (logged on the node)' },
  ADMIN_DISABLED: { status: 503, message: 'the admin API is off: set admin.token (RELAY_ADMIN_TOKEN)' },
  ADMIN_TOKEN_INVALID: { status: 403, message: 'the admin token is not valid' },
  BODY_INVALID: { status: 400, message: 'the request body is not valid' },
  REQUEST_INVALID: { status: 400, message: 'the request is not valid' },
  REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive in time (http.headersTimeoutMs, http.requestTimeoutMs)' },
  ORIGIN_UNREACHABLE: { status: 502, message: 'the origin holding the stream did not answer' },
  ORIGIN_SHUTTING_DOWN: { status: 503, message: 'the origin is shutting down; publish again (to another origin)' },
  STREAM_ENDED_BY_ADMIN: { status: 410, message: 'an operator ended the stream' },
  RECORDING_NOT_FOUND: { status: 404, message: 'no such recording (or file of it)' },
  RECORDING_UNAVAILABLE: { status: 503, message: 'no recorder answered (relay recorder, or the all-in-one mode)' },
  RECORDING_NOT_ACTIVE: { status: 409, message: 'no recorder is recording this stream' },
  RECORDING_WRITE_FAILED: { status: 507, message: 'a recording could not be written to its storage' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export class RelayError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status of the code; other transports derive theirs from it (WebSocket close 4000 + status). */
  readonly status: number;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const base = ErrorCodes[code].message;
    super(detail ? `${base}: ${detail}` : base, options);
    this.name = 'RelayError';
    this.code = code;
    this.status = ErrorCodes[code].status;
  }

  /** The form a client sees: `CODE: sentence`. */
  toClientString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** Any failure as a client may see it: a RelayError as it is, anything else INTERNAL (the cause kept for the log). */
export function asRelayError(err: unknown): RelayError {
  return err instanceof RelayError ? err : new RelayError('INTERNAL', undefined, { cause: err });
}
