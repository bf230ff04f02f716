import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAudit } from '@votestream/devstack';
import type { VoteCast } from '@votestream/schemas';
import test from 'ava';
import { eventually, stackDir } from '../../tests/support/stack.ts';
import { checkpointBytes, checkpointSignatureValid } from '../src/audit/chain.ts';
import type { AuditExport } from '../src/audit/export.ts';
import { makePoll, makeVote, pipelineHarness, startProcessor, streamTest } from './support.ts';

const keyFile = join(stackDir, 'secrets/audit-signing-private.pem');
const publicKeyFile = join(stackDir, 'secrets/audit-signing-public.pem');

const audit = runAudit;

test('decisions are chained through a kill -9, the final tally signs the heads, and a tampered export fails at the named position', async (t) => {
  t.timeout(300_000);
  const { id, prefix, keyspace, kafka, cql, children } = await streamTest(t, 'au', { cql: true });
  const { encodeVote, encodePoll, producer, decisions, tallies } = await pipelineHarness(t, kafka, prefix, id);
  const env = {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    CQL_KEYSPACE: keyspace,
    STREAM_APPLICATION_ID: `${id}-app`,
    STREAM_GRACE_MS: '1000',
    STREAM_IDLE_TIMEOUT_MS: '1000',
    AUDIT_SIGNING_KEY_FILE: keyFile,
    AUDIT_KEY_ID: 'test-key',
  };
  const first = await startProcessor(t, children, 'P1', env);

  const poll = makePoll(`p-${id}`, ['yes', 'no']);
  await producer.send({
    topic: `${prefix}polls`,
    acks: -1,
    messages: [
      { key: poll.pollId, value: encodePoll({ eventId: randomUUID(), type: 'CREATED', occurredAt: Date.now(), poll }) },
    ],
  });
  const send = (votes: VoteCast[]) =>
    producer.send({
      topic: `${prefix}votes`,
      acks: -1,
      messages: votes.map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
    });
  const decided = (votes: VoteCast[]) =>
    eventually(
      'every vote decided',
      async () => (votes.every((v) => decisions.has(v.voteId)) ? true : undefined),
      120_000,
    );
  const now = Date.now();
  const batch1 = Array.from({ length: 60 }, (_, i) => makeVote(poll.pollId, `v${i}`, i % 3 ? 'yes' : 'no', now));
  await send(batch1);
  await decided(batch1);

  // kill -9 and a successor that restores every task's chain head from the changelog.
  first.child.kill('SIGKILL');
  await first.exited;
  await startProcessor(t, children, 'P2', env);
  const batch2 = [
    ...Array.from({ length: 40 }, (_, i) => makeVote(poll.pollId, `w${i}`, 'no', now)),
    ...Array.from({ length: 10 }, (_, i) => makeVote(poll.pollId, `v${i}`, 'no', now)), // second votes: DUPLICATE
  ];
  await send(batch2);
  await decided(batch2);
  const counted = { yes: 40, no: 60 };

  await producer.send({
    topic: `${prefix}polls`,
    acks: -1,
    messages: [
      {
        key: poll.pollId,
        value: encodePoll({
          eventId: randomUUID(),
          type: 'CLOSED',
          occurredAt: Date.now(),
          poll: { ...poll, closedAt: Date.now() },
        }),
      },
    ],
  });
  const final = await eventually(
    'the final tally',
    async () => tallies.get(poll.pollId)?.find((u) => u.final),
    120_000,
  );
  t.deepEqual(final.totals, counted);
  t.is(final.audit?.keyId, 'test-key');
  t.is(final.audit?.heads.length, 4);
  t.is(
    final.audit!.heads.reduce((n, h) => n + h.count, 0),
    110,
    'every decision of the poll is chained',
  );
  t.true(
    checkpointSignatureValid(
      readFileSync(publicKeyFile, 'utf8'),
      checkpointBytes(poll.pollId, final.version, final.totals, final.audit!.heads),
      final.audit!.signature!,
    ),
  );
  // The CQL final row keeps the same checkpoint.
  const row = await eventually(
    'the CQL final row',
    async () => {
      const r = (
        await cql.execute(`SELECT final, audit FROM ${keyspace}.poll_totals WHERE poll_id = ?`, [poll.pollId], {
          prepare: true,
        })
      ).first();
      return r?.get('final') === true ? r : undefined;
    },
    60_000,
  );
  t.deepEqual(JSON.parse(row.get('audit') as string), JSON.parse(JSON.stringify(final.audit)));

  // Export and verify, as a third party would (and straight from Kafka).
  const dir = mkdtempSync(join(tmpdir(), 'audit-'));
  const file = join(dir, 'export.json');
  const exported = await audit(env, ['export', '--poll', poll.pollId, '--out', file]);
  t.is(exported.code, 0, exported.out);
  const ok = await audit(env, ['verify', '--poll', poll.pollId, '--file', file, '--public-key', publicKeyFile]);
  t.is(ok.code, 0, ok.out);
  t.regex(ok.out, /4 partitions, 110 chained decisions/);
  const live = await audit(env, ['verify', '--poll', poll.pollId, '--public-key', publicKeyFile]);
  t.is(live.code, 0, live.out);

  // A voter finds their receipt's vote in the chain.
  const mine = batch2[3]!;
  const found = await audit(env, [
    'verify',
    '--poll',
    poll.pollId,
    '--file',
    file,
    '--public-key',
    publicKeyFile,
    '--vote',
    mine.voteId,
  ]);
  t.is(found.code, 0, found.out);
  t.regex(found.out, new RegExp(`vote ${mine.voteId}: partition \\d position \\d+, COUNTED for no`));

  // Tampering: change, drop, reorder one decision.
  const original = JSON.parse(readFileSync(file, 'utf8')) as AuditExport;
  const busiest = [...original.chains].sort((a, b) => b.links.length - a.links.length)[0]!;
  const p = busiest.source;
  const tamper = async (change: (chain: AuditExport['chains'][number]) => void) => {
    const copy = JSON.parse(JSON.stringify(original)) as AuditExport;
    change(copy.chains.find((c) => c.source === p)!);
    const f = join(dir, `${randomUUID()}.json`);
    writeFileSync(f, JSON.stringify(copy));
    return audit(env, ['verify', '--poll', poll.pollId, '--file', f, '--public-key', publicKeyFile]);
  };
  const changed = await tamper((c) => {
    const l = c.links[5]!.leaf;
    l.optionId = l.optionId === 'yes' ? 'no' : 'yes';
  });
  t.is(changed.code, 1);
  t.regex(changed.out, new RegExp(`FAULT partition ${p} position 5 `));
  const dropped = await tamper((c) => c.links.splice(7, 1));
  t.is(dropped.code, 1);
  t.regex(dropped.out, new RegExp(`FAULT partition ${p} position 7 `));
  const reordered = await tamper((c) => {
    const [a, b] = [c.links[2]!, c.links[3]!];
    c.links[2] = b;
    c.links[3] = a;
  });
  t.is(reordered.code, 1);
  t.regex(reordered.out, new RegExp(`FAULT partition ${p} position 2 `));
});
