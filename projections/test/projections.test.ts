import { randomUUID } from 'node:crypto';
import { cqlTallyStore, createReadModels, liveTopics, resultsKey } from '@votestream/read-models';
import test from 'ava';
import { startProjections } from '../src/index.ts';
import { collect, createWorld, decision, eventually, tally } from './helpers.ts';

const MQTT = 'mqtt://127.0.0.1:1883';

async function start(
  t: import('ava').ExecutionContext,
  world: Awaited<ReturnType<typeof createWorld>>,
  overrides: Record<string, string> = {},
  fromBeginning = false,
) {
  const p = await startProjections(world.config(overrides), {
    subjectPrefix: world.subjectPrefix,
    logger: world.logger,
    fromBeginning,
  });
  t.teardown(() => p.close().catch(() => {}));
  return p;
}

test('totals in Redis, in CQL, through the read models and on the MQTT topic all equal the tally of the same version', async (t) => {
  const world = await createWorld(t, 'proj-eq');
  await start(t, world);
  const pollId = `p-${randomUUID()}`;
  const updates = [
    tally(pollId, { yes: 1, no: 0 }),
    tally(pollId, { yes: 3, no: 1 }),
    tally(pollId, { yes: 5, no: 4 }),
  ];
  const last = updates[2]!;
  await world.startStreamCqlSink(); // poll_totals comes from the stream's own CQL writer, fed by the same topic
  await world.produceTallies(updates);

  const subscriber = await world.mqttClient(MQTT);
  const messages = collect(subscriber);
  await subscriber.subscribeAsync(liveTopics.totals(pollId), { qos: 1 });
  const onTopic = await eventually(
    async () => messages.last(liveTopics.totals(pollId)),
    (m) => m?.version === last.version,
    30_000,
    'MQTT totals',
  );

  const expected = {
    pollId,
    totals: { yes: 5, no: 4 },
    total: 9,
    version: last.version,
    asOf: new Date(last.asOf).toISOString(),
    final: false,
  };
  t.deepEqual(onTopic?.body, expected, 'MQTT');
  t.deepEqual(
    JSON.parse((await world.redis.hget(resultsKey(world.redisPrefix, pollId), 'json')) ?? 'null'),
    expected,
    'Redis',
  );
  const inCql = await eventually(
    () => cqlTallyStore(world.cql, world.keyspace).read(pollId),
    (r) => r?.version === last.version,
    30_000,
    'CQL poll_totals at the last version',
  );
  t.deepEqual(inCql, expected, 'CQL');
  // The results API (ingest's GET /v1/polls/{pollId}/results) serves this library's answer; the system test
  // checks it end to end.
  const readModels = createReadModels({
    redis: world.redis,
    cql: world.cql,
    keyspace: world.keyspace,
    redisPrefix: world.redisPrefix,
  });
  t.deepEqual(await readModels.getResults(pollId), expected, 'read-models library');

  // The series topic carries the window counts of the same version.
  const series = await world.mqttClient(MQTT);
  const seriesMessages = collect(series);
  await series.subscribeAsync(liveTopics.series(pollId), { qos: 1 });
  const s = await eventually(
    async () => seriesMessages.last(liveTopics.series(pollId)),
    (m) => m !== undefined,
    30_000,
    'series',
  );
  t.is(s?.version, last.version);
  t.true(s?.retain, 'a late subscriber gets the retained series');
  const windows = s?.body.windows as { counts: Record<string, number>; total: number }[];
  t.deepEqual(windows.at(-1)?.counts, { yes: 5, no: 4 });
});

test('a late subscriber receives the retained latest totals at once', async (t) => {
  const world = await createWorld(t, 'proj-late');
  const projections = await start(t, world);
  const pollId = `p-${randomUUID()}`;
  const updates = [tally(pollId, { a: 1 }), tally(pollId, { a: 2 })];
  await world.produceTallies(updates);
  await eventually(
    async () => projections.publisher.publishedVersionOf(pollId),
    (v) => v === updates[1]!.version,
    30_000,
    'published',
  );

  const late = await world.mqttClient(MQTT);
  const messages = collect(late);
  await late.subscribeAsync(liveTopics.totals(pollId), { qos: 1 });
  const first = await eventually(
    async () => messages.of(liveTopics.totals(pollId))[0],
    (m) => m !== undefined,
    10_000,
    'retained',
  );
  t.true(first?.retain);
  t.is(first?.version, updates[1]!.version);
  t.deepEqual(first?.body.totals, { a: 2 });
});

test('an anonymous client can subscribe to live totals but cannot publish them', async (t) => {
  const world = await createWorld(t, 'proj-acl');
  const projections = await start(t, world);
  const pollId = `p-${randomUUID()}`;
  const real = tally(pollId, { a: 7 });
  await world.produceTallies([real]);
  await eventually(
    async () => projections.publisher.publishedVersionOf(pollId),
    (v) => v === real.version,
    30_000,
    'published',
  );

  const anonymous = await world.mqttClient(MQTT);
  const forged = JSON.stringify({
    pollId,
    version: real.version + 1_000_000,
    totals: { a: 1_000_000 },
    total: 1_000_000,
    asOf: new Date().toISOString(),
    final: true,
  });
  // MQTT 5: the broker answers a refused QoS 1 publish with PUBACK reason 0x87 (135, not authorized).
  const refused = await t.throwsAsync(() =>
    anonymous.publishAsync(liveTopics.totals(pollId), forged, { qos: 1, retain: true }),
  );
  t.is((refused as Error & { code?: number }).code, 135);
  const elsewhere = await t.throwsAsync(() => anonymous.publishAsync('votestream/other', 'x', { qos: 1 }));
  t.is((elsewhere as Error & { code?: number }).code, 135);

  // A fresh subscriber still sees the projector's retained totals, not the forged message.
  const subscriber = await world.mqttClient(MQTT);
  const messages = collect(subscriber);
  const granted = await subscriber.subscribeAsync(liveTopics.totals(pollId), { qos: 1 });
  t.is(granted[0]?.qos, 1, 'subscription granted');
  const first = await eventually(
    async () => messages.of(liveTopics.totals(pollId))[0],
    (m) => m !== undefined,
    10_000,
    'retained',
  );
  t.is(first?.version, real.version);
  t.deepEqual(first?.body.totals, { a: 7 });
});

test('live totals are coalesced: fewer messages than tallies, versions strictly increase, the last is the latest', async (t) => {
  const world = await createWorld(t, 'proj-coal');
  const pollId = `p-${randomUUID()}`;
  const subscriber = await world.mqttClient(MQTT);
  const messages = collect(subscriber);
  await subscriber.subscribeAsync(liveTopics.totals(pollId), { qos: 1 });
  const projections = await start(t, world, { LIVE_MESSAGES_PER_POLL_PER_SECOND_MAX: '2' });
  const updates = Array.from({ length: 200 }, (_, i) => tally(pollId, { a: i + 1 }));
  for (let i = 0; i < updates.length; i += 20) await world.produceTallies(updates.slice(i, i + 20));
  const lastVersion = updates.at(-1)!.version;
  await eventually(
    async () => messages.last(liveTopics.totals(pollId)),
    (m) => m?.version === lastVersion,
    30_000,
    'latest',
  );
  const versions = messages.of(liveTopics.totals(pollId)).map((m) => m.version);
  t.true(versions.length < updates.length, `${versions.length} messages for ${updates.length} tallies`);
  for (let i = 1; i < versions.length; i++) t.true(versions[i]! > versions[i - 1]!, `strictly increasing at ${i}`);
  t.deepEqual(messages.last(liveTopics.totals(pollId))?.body.totals, { a: 200 });
  t.is(projections.publisher.publishedVersionOf(pollId), lastVersion);
});

test('a receipt is pending, then counted; a duplicate vote gets a rejected receipt with its reason', async (t) => {
  const world = await createWorld(t, 'proj-rcpt');
  await start(t, world);
  const readModels = createReadModels({
    redis: world.redis,
    cql: world.cql,
    keyspace: world.keyspace,
    redisPrefix: world.redisPrefix,
  });
  const pollId = `p-${randomUUID()}`;
  const voterId = `voter-${randomUUID()}`;
  const first = randomUUID();
  const second = randomUUID();
  t.is(await readModels.getReceipt(pollId, voterId), null, 'pending before any decision');
  await world.produceDecisions([decision(pollId, voterId, first, 'COUNTED')]);
  const counted = await eventually(
    () => readModels.getReceipt(pollId, voterId),
    (r) => r !== null,
    30_000,
    'counted receipt',
  );
  t.like(counted, { voteId: first, optionId: 'yes', status: 'counted', reason: null });
  t.is(await readModels.getReceipt(pollId, voterId, second), null, 'the duplicate is pending until decided');
  await world.produceDecisions([decision(pollId, voterId, second, 'REJECTED', { countedVoteId: first })]);
  const rejected = await eventually(
    () => readModels.getReceipt(pollId, voterId, second),
    (r) => r !== null,
    30_000,
    'rejected receipt',
  );
  t.like(rejected, { voteId: second, status: 'rejected', reason: 'duplicate', countedVoteId: first });
  t.is((await readModels.getReceipt(pollId, voterId))?.voteId, first, 'the voter’s receipt names the vote that counts');
});

test('a replay of tallies and decisions from the beginning leaves every read model unchanged', async (t) => {
  const world = await createWorld(t, 'proj-replay');
  const first = await start(t, world);
  const pollIds = [`p-${randomUUID()}`, `p-${randomUUID()}`];
  const updates = pollIds.flatMap((p) => [
    tally(p, { a: 1 }),
    tally(p, { a: 2, b: 1 }),
    tally(p, { a: 4, b: 2 }, { final: true }),
  ]);
  await world.produceTallies(updates);
  const voters = Array.from({ length: 20 }, (_, i) => `voter-${i}-${randomUUID()}`);
  await world.produceDecisions(voters.map((v) => decision(pollIds[0]!, v, randomUUID(), 'COUNTED')));
  const readModels = createReadModels({
    redis: world.redis,
    cql: world.cql,
    keyspace: world.keyspace,
    redisPrefix: world.redisPrefix,
  });
  const lastOf = (p: string) => updates.filter((u) => u.pollId === p).at(-1)!.version;
  for (const p of pollIds)
    await eventually(
      async () => first.publisher.publishedVersionOf(p),
      (v) => v === lastOf(p),
      30_000,
      'published',
    );
  await eventually(
    async () => (await Promise.all(voters.map((v) => readModels.getReceipt(pollIds[0]!, v)))).every((r) => r !== null),
    (ok) => ok,
    30_000,
    'receipts',
  );

  const snapshot = async () => ({
    redis: await Promise.all(pollIds.map((p) => world.redis.hgetall(resultsKey(world.redisPrefix, p)))),
    receipts: (await world.cql.execute(`SELECT * FROM ${world.keyspace}.ballot_receipts`)).rows
      .map((r) => JSON.stringify(r))
      .sort(),
    receiptWriteTimes: (
      await world.cql.execute(`SELECT vote_id, writetime(outcome) AS wt FROM ${world.keyspace}.ballot_receipts`)
    ).rows
      .map((r) => `${r.vote_id}:${r.wt}`)
      .sort(),
  });
  const before = await snapshot();
  await first.close();

  // A projector in a new consumer group reads both topics from offset 0.
  const replayGroup = `${world.topicPrefix}replay`;
  const replay = await start(t, world, { PROJECTIONS_GROUP_ID: replayGroup }, true);
  const caughtUp = async (group: string, topic: string) => {
    const ends = await world.admin.fetchTopicOffsets(topic);
    const [committed] = await world.admin.fetchOffsets({ groupId: group, topics: [topic] });
    // An empty partition (both polls may hash to the same one) has nothing to commit: it counts as caught up.
    return ends.every(
      (e) => e.high === e.low || committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
    );
  };
  await eventually(
    () => caughtUp(`${replayGroup}-tallies`, world.topics.tallies),
    (ok) => ok,
    30_000,
    'tallies replayed',
  );
  await eventually(
    () => caughtUp(`${replayGroup}-receipts`, world.topics.voteDecisions),
    (ok) => ok,
    30_000,
    'decisions replayed',
  );
  t.deepEqual(await snapshot(), before);
  for (const p of pollIds)
    t.is(replay.publisher.versionOf(p), lastOf(p), 'the live publisher holds the same latest version');
});
