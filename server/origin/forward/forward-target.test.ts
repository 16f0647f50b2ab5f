import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseForwardUrl, type ForwardTarget } from '../../core/config/forward-url.ts';
import type { StreamInit } from '../../core/media/frame.ts';
import { cannotCarry, forwardArgs, inputContainer, redact } from './forward-target.ts';

const target = (url: string): ForwardTarget => {
  const t = parseForwardUrl(url);
  assert.ok(typeof t !== 'string', `${url}: ${t as string}`);
  return t;
};

const h264Aac: StreamInit = {
  video: { codec: 'h264', config: Buffer.alloc(0), codecString: 'avc1.64001f', width: 1280, height: 720 },
  audio: { codec: 'aac', config: Buffer.alloc(0), codecString: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
  metadata: {},
};
const only = (init: Omit<StreamInit, 'metadata'>): StreamInit => ({ ...init, metadata: {} });

describe('forward targets (streams[].forward)', () => {
  test('RTMP, RTMPS and SRT URLs are read, with their secrets hidden wherever they are shown', () => {
    assert.deepEqual(target('rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl'), {
      url: 'rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl',
      shown: 'rtmp://a.rtmp.youtube.com/live2/***',
      container: 'flv',
    });
    assert.equal(target('rtmps://live.example.com:443/app/sub/key123?token=x').shown, 'rtmps://live.example.com:443/app/sub/***?***');
    const srt = target('srt://ingest.example.com:9000?streamid=%23!::r=live,s=secret-key&latency=200000&passphrase=longpassphrase');
    assert.equal(srt.container, 'mpegts');
    assert.equal(srt.shown, 'srt://ingest.example.com:9000?streamid=***&latency=200000&passphrase=***');
  });

  test('anything else is refused with the reason the configuration check shows', () => {
    assert.equal(parseForwardUrl('not a url'), 'not a URL');
    assert.match(parseForwardUrl('rtmp://host/live') as string, /application and a stream key/);
    assert.match(parseForwardUrl('srt://host?streamid=x') as string, /names its port/);
    assert.match(parseForwardUrl('http://host/live/key') as string, /http is not a forward protocol/);
    assert.match(parseForwardUrl('srt://host:9000?streamid=#!::r=cam,m=publish') as string, /write it as %23/);
  });

  test('codecs go as they are: FLV (RTMP) takes H.264 and AAC only here, MPEG-TS (SRT) everything but AV1', () => {
    assert.equal(cannotCarry('flv', h264Aac), undefined);
    assert.equal(cannotCarry('mpegts', h264Aac), undefined);
    const hevcOpus = only({ video: { ...h264Aac.video!, codec: 'hevc' }, audio: { ...h264Aac.audio!, codec: 'opus' } });
    assert.match(cannotCarry('flv', hevcOpus)!, /cannot carry hevc here: forward it over SRT/);
    assert.match(cannotCarry('flv', only({ audio: hevcOpus.audio }))!, /cannot carry opus/);
    assert.equal(cannotCarry('mpegts', hevcOpus), undefined);
    assert.match(cannotCarry('mpegts', only({ video: { ...h264Aac.video!, codec: 'av1' } }))!, /AV1/);
    assert.equal(inputContainer(h264Aac), 'flv');
    assert.equal(inputContainer(only({ video: h264Aac.video })), 'flv');
    assert.equal(inputContainer(hevcOpus), 'matroska');
    assert.equal(inputContainer(only({ video: h264Aac.video, audio: hevcOpus.audio })), 'matroska');
  });

  test('ffmpeg copies the stream to the target: FLV with a read/write timeout for RTMP, MPEG-TS lingering at the end for SRT', () => {
    const rtmp = forwardArgs(target('rtmp://host/live/key'), 'flv', 10_000);
    assert.deepEqual(rtmp.slice(-5), ['-rw_timeout', '10000000', '-f', 'flv', 'rtmp://host/live/key']);
    assert.deepEqual(rtmp.slice(rtmp.indexOf('-f'), rtmp.indexOf('-f') + 8), ['-f', 'flv', '-i', 'pipe:0', '-map', '0', '-c', 'copy']);
    const srt = forwardArgs(target('srt://host:9000?streamid=k'), 'matroska', 10_000);
    assert.deepEqual(srt.slice(-5), ['-f', 'mpegts', '-linger', '1', 'srt://host:9000?streamid=k']);
    assert.ok(srt.includes('matroska'));
  });

  test("ffmpeg's words about a target lose its secrets", () => {
    const rtmp = target('rtmp://host/live/secret-key-123');
    assert.equal(
      redact(rtmp, '[rtmp @ 0x1] Server error: rtmp://host/live/secret-key-123: Connection refused; key secret-key-123'),
      '[rtmp @ 0x1] Server error: rtmp://host/live/***: Connection refused; key ***',
    );
    const srt = target('srt://host:9000?streamid=publish-secret&passphrase=longpassphrase');
    assert.equal(
      redact(srt, 'Connection to srt://host:9000?streamid=publish-secret&passphrase=longpassphrase failed (publish-secret)'),
      'Connection to srt://host:9000?streamid=***&passphrase=*** failed (***)',
    );
  });
});
