import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import { frameBinary, frameText } from './ws-frame.ts';

// ws's own frame parser, as an independent check (its types do not declare it).
type ReceiverLike = EventEmitter & { write(chunk: Buffer): void };
const { Receiver } = createRequire(import.meta.url)('ws') as { Receiver: new (options: { isServer: boolean }) => ReceiverLike };

function parse(frame: Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false });
    receiver.on('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }));
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

test("binary frames of every length class are read back by ws's own parser", async () => {
  for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    const payload = Buffer.alloc(size, size % 251);
    const out = await parse(frameBinary(payload));
    assert.equal(out.isBinary, true);
    assert.deepEqual(out.data, payload, `size ${size}`);
  }
});

test('text frames carry JSON control messages', async () => {
  const out = await parse(frameText('{"type":"status"}'));
  assert.equal(out.isBinary, false);
  assert.equal(out.data.toString(), '{"type":"status"}');
});
