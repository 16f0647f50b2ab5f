import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shardToMove, type ShardLeadership } from './shard-leaders.ts';

const r3 = (jsStream: string, leader: string): ShardLeadership => ({
  jsStream,
  leader,
  followers: ['n1', 'n2', 'n3'].filter((n) => n !== leader),
});

test('leaders already spread (2-2-2 over six shards, or 1-1-0 over two) are left where they are', () => {
  assert.equal(shardToMove([r3('S0', 'n1'), r3('S1', 'n2'), r3('S2', 'n3'), r3('S3', 'n1'), r3('S4', 'n2'), r3('S5', 'n3')]), undefined);
  assert.equal(shardToMove([r3('S0', 'n1'), r3('S1', 'n2')]), undefined);
});

test('a node leading two more than another gives up one of its shards', () => {
  // 4-1-1: n1 steps down one of its four.
  const move = shardToMove([r3('S0', 'n1'), r3('S1', 'n1'), r3('S2', 'n1'), r3('S3', 'n1'), r3('S4', 'n2'), r3('S5', 'n3')]);
  assert.ok(['S0', 'S1', 'S2', 'S3'].includes(move!), move);
  // A node that leads nothing counts as leading none.
  assert.equal(shardToMove([r3('S0', 'n1'), r3('S1', 'n2'), r3('S2', 'n1')]), 'S0'); // 2-1-0 over three shards
});

test('one replica (its own leader, no follower to take over) or a shard without a current follower on a lighter node is never moved', () => {
  const r1 = (jsStream: string, leader: string): ShardLeadership => ({ jsStream, leader, followers: [] });
  assert.equal(shardToMove([r1('S0', 'n1'), r1('S1', 'n1'), r1('S2', 'n1')]), undefined);
  // n1 leads 3, n2 2, n3 none; n3 holds no current replica of S0 or S1 (and n2 is not two lighter); S2's follower n3 is current.
  const shards: ShardLeadership[] = [
    { jsStream: 'S0', leader: 'n1', followers: ['n2'] },
    { jsStream: 'S1', leader: 'n1', followers: ['n2'] },
    { jsStream: 'S2', leader: 'n1', followers: ['n2', 'n3'] },
    { jsStream: 'S3', leader: 'n2', followers: ['n1'] },
    { jsStream: 'S4', leader: 'n2', followers: ['n1'] },
  ];
  assert.equal(shardToMove(shards), 'S2');
  // No leader at all (an election under way): nothing to do.
  assert.equal(shardToMove([{ jsStream: 'S0', leader: undefined, followers: ['n1', 'n2'] }]), undefined);
});

test('an idle shard is moved before a busy one, and a busy one only when allowed (its in-flight frames fail while its leader changes)', () => {
  const shards: ShardLeadership[] = [{ ...r3('S0', 'n1'), idle: false }, { ...r3('S1', 'n1'), idle: true }, { ...r3('S2', 'n1'), idle: false }, r3('S3', 'n2')];
  assert.equal(shardToMove(shards), 'S1');
  assert.equal(shardToMove(shards, { busy: false }), 'S1');
  const busy = shards.map((s) => ({ ...s, idle: false }));
  assert.equal(shardToMove(busy, { busy: false }), undefined);
  assert.equal(shardToMove(busy, { busy: true }), 'S0');
});
