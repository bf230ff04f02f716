import { readTopicToEnd } from '@votestream/runtime';
import { createAvroSerde, type VoteAnalytics, type VoteCast } from '@votestream/schemas';
import test from 'ava';
import { eventually, stack } from '../../tests/support/stack.ts';
import { makePoll, makeVote, pipelineHarness, startProcessor, streamTest } from './support.ts';

const saltTtlS = 7200;

test('every decision has one analytics record with a per-poll pseudonym and no voter identity; the salt expires', async (t) => {
  t.timeout(240_000);
  const { id, prefix, keyspace, kafka, cql, children } = await streamTest(t, 'an', { cql: true });
  const { encodeVote, encodePoll, producer, decisions } = await pipelineHarness(t, kafka, prefix, id);
  await startProcessor(t, children, 'P', {
    TOPIC_PREFIX: prefix,
    SCHEMA_SUBJECT_PREFIX: `${id}.`,
    CQL_KEYSPACE: keyspace,
    STREAM_APPLICATION_ID: `${id}-app`,
    ANALYTICS_SALT_TTL_S: String(saltTtlS),
  });

  const polls = [makePoll(`a-${id}`, ['yes', 'no']), makePoll(`b-${id}`, ['yes', 'no'])];
  for (const poll of polls)
    await producer.send({
      topic: `${prefix}polls`,
      acks: -1,
      messages: [
        { key: poll.pollId, value: encodePoll({ eventId: id, type: 'CREATED', occurredAt: Date.now(), poll }) },
      ],
    });
  const now = Date.now();
  const votes: VoteCast[] = [];
  for (const poll of polls) {
    for (let i = 0; i < 40; i++) votes.push(makeVote(poll.pollId, `voter-${i}@example.org`, i % 3 ? 'yes' : 'no', now));
    for (let i = 0; i < 10; i++) votes.push(makeVote(poll.pollId, `voter-${i}@example.org`, 'no', now)); // duplicates
  }
  for (const v of votes) {
    v.evidence.tokenId = `jti-${v.voteId}`;
    v.evidence.deviceId = `device-${v.voterId}`;
    v.evidence.userAgent = 'votestream-sdk/3.1.0 (iOS 18)';
    v.evidence.networkPrefix = '192.0.2.0/24';
  }
  await producer.send({
    topic: `${prefix}votes`,
    acks: -1,
    messages: votes.map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
  });
  await eventually(
    'every vote decided',
    async () => (votes.every((v) => decisions.has(v.voteId)) ? true : undefined),
    120_000,
  );

  // The analytics topic read to its end (read_committed): exactly one record per decision. The analytics stage
  // reads the committed decisions in transactions of its own, so the topic is read until it holds as many
  // records as there are votes (never more: checked once more below after a further read).
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl });
  const decode = serde.decoder('VoteAnalytics');
  let reads = 0;
  const readAnalytics = async () => {
    const out: Array<{ key: string; value: VoteAnalytics; raw: string }> = [];
    await readTopicToEnd(
      kafka,
      `${prefix}analytics-votes`,
      async (_p, m) => {
        if (m.value)
          out.push({ key: m.key?.toString() ?? '', value: await decode(m.value), raw: m.value.toString('latin1') });
      },
      { timeoutMs: 60_000, groupIdPrefix: `${id}-analytics-${reads++}` },
    );
    return out;
  };
  await eventually(
    'an analytics record for every decision',
    async () => ((await readAnalytics()).length >= votes.length ? true : undefined),
    120_000,
  );
  const records = await readAnalytics();
  t.is(records.length, votes.length);

  // Counted and rejected exactly as the decisions say, per poll and option.
  const tally = (list: Array<{ pollId: string; optionId: string; counted: boolean; reason: string | null }>) => {
    const out: Record<string, number> = {};
    for (const r of list) {
      const k = `${r.pollId}|${r.optionId}|${r.counted}|${r.reason}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };
  const decided = votes.map((v) => {
    const d = decisions.get(v.voteId)![0]!;
    return { pollId: v.pollId, optionId: v.optionId, counted: d.outcome === 'COUNTED', reason: d.reason };
  });
  t.deepEqual(tally(records.map((r) => r.value)), tally(decided));
  t.is(records.filter((r) => r.value.counted).length, 80);

  // One pseudonym per voter per poll; a voter of both polls has two unrelated ones.
  for (const poll of polls) {
    const mine = records.filter((r) => r.value.pollId === poll.pollId);
    t.is(new Set(mine.map((r) => r.value.voterPseudonym)).size, 40, poll.pollId);
    for (const r of mine) t.is(r.key, `${poll.pollId}/${r.value.voterPseudonym}`);
  }
  const pseudonymsOf = (pollId: string) =>
    new Set(records.filter((r) => r.value.pollId === pollId).map((r) => r.value.voterPseudonym));
  const [a, b] = [pseudonymsOf(polls[0]!.pollId), pseudonymsOf(polls[1]!.pollId)];
  t.is([...a].filter((p) => b.has(p)).length, 0);

  // No raw identity anywhere in the records' bytes; the network and client are coarse.
  for (const r of records) {
    for (const secret of ['@example.org', 'voter-', 'jti-', 'device-', '192.0.2.0', 'iOS'])
      t.false(r.raw.includes(secret) || r.key.includes(secret), secret);
    t.is(r.value.networkPrefix, '192.0.0.0/16');
    t.is(r.value.clientFamily, 'votestream-sdk/3');
  }

  // Each poll's salt is in CQL, 32 bytes, and expires within the configured TTL.
  for (const poll of polls) {
    const row = (
      await cql.execute(
        `SELECT salt, TTL(salt) AS ttl FROM ${keyspace}.analytics_salts WHERE poll_id = ?`,
        [poll.pollId],
        {
          prepare: true,
        },
      )
    ).first();
    t.is((row.get('salt') as Buffer).length, 32);
    const ttl = Number(row.get('ttl'));
    t.true(ttl > 0 && ttl <= saltTtlS, `ttl ${ttl}`);
  }
});
