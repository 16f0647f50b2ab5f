import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { ConnectionsPerAddress } from './connections-per-address.ts';

const socket = (remoteAddress: string) => Object.assign(new EventEmitter(), { remoteAddress }) as unknown as Socket;

test('an address gets at most max connections at once; closing one frees its place; other addresses are not affected', () => {
  const limit = new ConnectionsPerAddress(2);
  const a1 = socket('10.0.0.1');
  assert.equal(limit.admit(a1), true);
  assert.equal(limit.admit(socket('::ffff:10.0.0.1')), true, 'IPv4-mapped counts as the same address');
  assert.equal(limit.admit(socket('10.0.0.1')), false);
  assert.equal(limit.admit(socket('10.0.0.2')), true);
  assert.equal(limit.refused, 1);
  a1.emit('close');
  assert.equal(limit.admit(socket('10.0.0.1')), true);
  assert.equal(limit.addresses, 2);
});

test('max 0 is no limit, and closed addresses are forgotten', () => {
  const limit = new ConnectionsPerAddress(0);
  const sockets = Array.from({ length: 1000 }, () => socket('10.0.0.1'));
  for (const s of sockets) assert.equal(limit.admit(s), true);
  for (const s of sockets) s.emit('close');
  assert.equal(limit.addresses, 0);
});
