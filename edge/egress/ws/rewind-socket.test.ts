import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Frame, StreamInit } from '../../../server/core/media/frame.ts';
import { Fmp4Muxer, fragmentBytes } from '../../../server/core/media/mp4/fmp4-muxer.ts';
import { splitSegment } from './rewind-socket.ts';

const init: StreamInit = {
  video: { codec: 'h264', config: Buffer.from('0164001fffe1', 'hex'), codecString: 'avc1.64001f', width: 640, height: 360 },
  audio: { codec: 'aac', config: Buffer.from('1190', 'hex'), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
  metadata: { framerate: 30 },
};

describe('a stored segment split back into its fragments (rewind over a WebSocket)', () => {
  test('each [prft] moof mdat comes back whole, in order, with its ingest time', () => {
    const muxer = new Fmp4Muxer(init);
    const fragments: Buffer[] = [];
    const walls: number[] = [];
    for (let i = 0; i < 10; i++) {
      const receivedAt = 1_796_550_000_000 + i * 33.25;
      const audio: Frame = { track: 'audio', codec: 'aac', dts: i * 3000, cto: 0, keyframe: false, payload: Buffer.alloc(10, i), receivedAt, init };
      muxer.push(audio);
      const video: Frame = { track: 'video', codec: 'h264', dts: i * 3000, cto: 0, keyframe: i === 0, payload: Buffer.alloc(300 + i, i), receivedAt, init };
      const f = muxer.push(video)!;
      fragments.push(Buffer.from(fragmentBytes(f)));
      walls.push(receivedAt);
    }
    const split = splitSegment(Buffer.concat(fragments));
    assert.equal(split.length, 10);
    for (const [i, f] of split.entries()) {
      assert.ok(f.bytes.equals(fragments[i]!), `fragment ${i} byte for byte`);
      assert.ok(Math.abs(f.wallMs! - walls[i]!) < 0.01, `fragment ${i}'s ingest time`);
    }
  });

  test('a damaged segment (a box running past its end) is refused, not half-sent', () => {
    const bad = Buffer.alloc(16);
    bad.writeUInt32BE(100, 0);
    bad.write('moof', 4, 'latin1');
    assert.throws(() => splitSegment(bad), /damaged segment/);
  });
});
