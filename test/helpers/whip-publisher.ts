/**
 * A WHIP publisher for tests and benchmarks: a werift peer connection that sends a pre-encoded
 * clip (H.264 without B-frames from an FLV file, Opus from an Ogg file) in real
 * time, looped, as OBS 30+ would over WHIP. The clip is encoded once by ffmpeg
 * (`encodeWhipClip`), so that publishing costs no encoder time on the machine under test.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RTCPeerConnection, RtpHeader, RtpPacket, useH264, useOPUS, usePLI, useNACK } from 'werift';
import { FlvFrameReader } from '../../server/core/media/flv/flv-frame-reader.ts';
import type { Frame, StreamInit } from '../../server/core/media/frame.ts';
import { opusConfig } from '../../server/core/media/opus.ts';
import { parseAvcC } from '../../server/core/media/h264.ts';
import { packetizeH264 } from '../../server/core/media/rtp/h264-packetizer.ts';
import { OggOpusReader } from '../../server/core/media/ogg/ogg-opus-reader.ts';
import { readFlvFile } from './flv-file.ts';

export interface WhipClip {
  video: string;
  audio: string;
}

/** A WebRTC-safe clip: H.264 Constrained Baseline without B-frames, 2 s GOP, and Opus 20 ms packets. */
export function encodeWhipClip(dir: string, options: { size: string; kbps: number; seconds: number }): WhipClip {
  const video = join(dir, 'whip-video.flv');
  const audio = join(dir, 'whip-audio.ogg');
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${options.size}:rate=30`,
    '-t',
    String(options.seconds),
    '-c:v',
    'libx264',
    '-profile:v',
    'baseline',
    '-preset',
    'veryfast',
    '-bf',
    '0',
    '-g',
    '60',
    '-keyint_min',
    '60',
    '-sc_threshold',
    '0',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    `${options.kbps}k`,
    '-maxrate',
    `${options.kbps}k`,
    '-bufsize',
    `${options.kbps}k`,
    '-f',
    'flv',
    video,
  ]);
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(options.seconds),
    '-ac',
    '2',
    '-c:a',
    'libopus',
    '-b:a',
    '64k',
    '-frame_duration',
    '20',
    '-f',
    'ogg',
    audio,
  ]);
  return { video, audio };
}

/** The clip as WHIP carries it: H.264 pictures and Opus packets as frames, on one 90 kHz timeline from 0. */
export function clipFrames(clip: WhipClip): Frame[] {
  const reader = new FlvFrameReader();
  const video = readFlvFile(clip.video)
    .flatMap((t) => reader.push(t.type, t.timestamp, t.body, 0) ?? [])
    .filter((f) => f.track === 'video');
  const init: StreamInit = { video: reader.current.video, audio: opusConfig(2), metadata: {} };
  const packets = new OggOpusReader().push(readFileSync(clip.audio));
  const v0 = video[0]!.dts;
  const a0 = packets[0]!.start;
  const frames: Frame[] = [
    ...video.map((f) => ({ ...f, dts: f.dts - v0, init })),
    ...packets.map((p): Frame => ({
      track: 'audio',
      codec: 'opus',
      dts: Math.round(((p.start - a0) * 90) / 48),
      cto: 0,
      keyframe: true,
      payload: p.payload,
      receivedAt: 0,
      init,
    })),
  ];
  return frames.sort((x, y) => x.dts - y.dts);
}

/** A WHIP-like source: H.264 without B-frames and Opus, on one 90 kHz timeline starting at 5 s. */
export function whipLikeFrames(dir: string): Frame[] {
  return clipFrames(encodeWhipClip(dir, { size: '320x180', kbps: 300, seconds: 2 })).map((f) => ({ ...f, dts: f.dts + 450_000 }));
}

export interface WhipPublisher {
  stop(): Promise<void>;
  stats: { videoFrames: number; audioPackets: number };
}

/** Publishes `clip` to `whipUrl` with the stream key as bearer token, looped until stopped. */
export async function publishWhipClip(whipUrl: string, key: string, clip: WhipClip): Promise<WhipPublisher> {
  const frames = clipFrames(clip);
  const avc = parseAvcC(frames[0]!.init.video!.config);
  const paramSets = [...avc.sps, ...avc.pps];
  const pictures = frames.filter((f) => f.track === 'video');
  const durationTicks = pictures.at(-1)!.dts + (pictures.length > 1 ? pictures[1]!.dts - pictures[0]!.dts : 3000);
  const pc = new RTCPeerConnection({
    codecs: { video: [useH264({ rtcpFeedback: [usePLI(), useNACK()] })], audio: [useOPUS()] },
    headerExtensions: { video: [], audio: [] },
    bundlePolicy: 'max-bundle',
  });
  const video = pc.addTransceiver('video', { direction: 'sendonly' });
  const audio = pc.addTransceiver('audio', { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(whipUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${key}` },
    body: pc.localDescription!.sdp,
  });
  if (res.status !== 201) throw new Error(`WHIP refused: ${res.status} ${await res.text()}`);
  const location = new URL(res.headers.get('location')!, whipUrl).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('WHIP: not connected in 10 s')), 10_000);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const stats = { videoFrames: 0, audioPackets: 0 };
  let vSeq = 0;
  let aSeq = 0;
  let next = 0;
  let loop = 0;
  const started = performance.now();
  const send = () => {
    const nowTicks = (performance.now() - started) * 90;
    while (nowTicks >= loop * durationTicks + frames[next]!.dts) {
      const f = frames[next]!;
      const ticks = loop * durationTicks + f.dts;
      if (f.track === 'video') {
        const payloads = packetizeH264(f.payload, avc.lengthSize, f.keyframe ? paramSets : []);
        const ts = ticks >>> 0;
        payloads.forEach((p, i) => {
          void video.sender.sendRtp(
            new RtpPacket(
              new RtpHeader({ sequenceNumber: vSeq, timestamp: ts, marker: i === payloads.length - 1, payloadType: video.sender.codec!.payloadType }),
              p,
            ),
          );
          vSeq = (vSeq + 1) & 0xffff;
        });
        stats.videoFrames++;
      } else {
        void audio.sender.sendRtp(
          new RtpPacket(
            new RtpHeader({
              sequenceNumber: aSeq,
              timestamp: Math.round((ticks * 48) / 90) >>> 0,
              marker: false,
              payloadType: audio.sender.codec!.payloadType,
            }),
            f.payload,
          ),
        );
        aSeq = (aSeq + 1) & 0xffff;
        stats.audioPackets++;
      }
      if (++next === frames.length) {
        next = 0;
        loop++;
      }
    }
  };
  const timer = setInterval(send, 5);
  let stopped = false;
  return {
    stats,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await fetch(location, { method: 'DELETE' }).catch(() => {});
      await pc.close();
    },
  };
}
