// The parts of node-media-server 4.4's protocol layer that rtmp-ingest.ts uses.
// It ships no types of its own (and @types/node-media-server describes v2).
declare module 'node-media-server/src/protocol/rtmp.js' {
  interface RtmpPacketHeader {
    fmt: number;
    cid: number;
    timestamp: number;
    length: number;
    type: number;
    stream_id: number;
  }
  interface AVPacket {
    codec_type: number;
    codec_id: number;
    flags: number;
    dts: number;
    pts: number;
    size: number;
    data: Buffer;
  }
  export default class Rtmp {
    streamApp?: string;
    streamName?: string;
    streamId: number;
    inChunkSize: number;
    inPackets: Map<number, { capacity: number }>;
    parserPacket: { header: RtmpPacketHeader; capacity: number };
    onConnectCallback: (req: { app: string; name: string; host: string; query: Record<string, unknown> }) => void;
    onPlayCallback: () => void;
    onPushCallback: () => void;
    onPacketCallback: (packet: AVPacket) => void;
    onOutputCallback: (buffer: Buffer) => void;
    parserData(buffer: Buffer): string | null;
    packetAlloc(): void;
    controlHandler(): void;
    respondPublish(): void;
    sendStatusMessage(sid: number, level: string, code: string, description: string): void;
  }
}
declare module 'node-media-server/src/core/logger.js' {
  const logger: { level: string; log(message: string, level?: string): void };
  export default logger;
}
