/**
 * The SDK against the REAL ingest (a child process) on the real local stack: Kafka, schema registry, Redis, CQL.
 * The network in front of ingest is a TCP proxy the test controls, to cut it (or kill ingest) in the middle of a vote.
 * "Exactly once" is checked where it matters: the votes topic holds exactly one VoteCast for the voter.
 */

import {
  closePoll,
  createPoll,
  createTopics,
  devToken,
  migrateKeyspace,
  type RunningService,
  readTopic,
  repoRoot,
  stack,
  startPipelineService,
  uniqueId,
} from '@votestream/devstack';
import { topicNames, withTimeout } from '@votestream/runtime';
import { createAvroSerde, type VoteCast } from '@votestream/schemas';
import anyTest, { type TestFn } from 'ava';
import { createVoterClient, type VoterClientOptions } from '../src/client.ts';
import { createMemoryStorage } from '../src/outbox.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

const test = anyTest as TestFn<{
  prefix: string;
  redisPrefix: string;
  /** A holder, not the process itself: AVA gives each test a shallow copy of the context, and one test replaces ingest. */
  running: { ingest: RunningService };
  proxy: TcpProxy;
  apiUrl: string;
  cleanup: Array<() => Promise<unknown>>;
}>;

const keyspace = 'sdk_test';
const admin = () => devToken('sdk-test-admin', { admin: true });

/** The real ingest (`ingest/src/main.ts`) on this file's topics, Redis prefix and keyspace; the stack's dev keys. */
function startIngest(prefix: string, redisPrefix: string, name: string): Promise<RunningService> {
  return startPipelineService('ingest', {
    name,
    env: {
      TOPIC_PREFIX: prefix,
      REDIS_PREFIX: redisPrefix,
      CQL_KEYSPACE: keyspace,
      ALTCHA_MAX_NUMBER: '2000', // a few ms of proof of work per vote in tests
      LOG_LEVEL: 'info',
    },
    logDir: `${repoRoot}/test-results/sdk`,
  });
}

/** Every VoteCast in the votes topic, read to its end offsets at call time. */
async function readAllVotes(prefix: string): Promise<VoteCast[]> {
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, records: ['VoteCast'] });
  return readTopic(topicNames(prefix).votes, serde.decoder('VoteCast'));
}

test.before(async (t) => {
  const cleanup: Array<() => Promise<unknown>> = [];
  t.context.cleanup = cleanup;
  const id = uniqueId('');
  const prefix = `t-sdk-${id}.`;
  const redisPrefix = `t-sdk-${id}:`;
  cleanup.push(await createTopics(prefix, { votePartitions: 3, only: ['votes', 'polls'] }));
  await migrateKeyspace(keyspace);
  const ingest = await startIngest(prefix, redisPrefix, `ingest-${id}-1`);
  const running = { ingest };
  cleanup.unshift(() => running.ingest.process.stop());
  const proxy = await startTcpProxy(ingest.port);
  cleanup.unshift(() => proxy.close());
  Object.assign(t.context, { prefix, redisPrefix, running, proxy, apiUrl: `http://127.0.0.1:${proxy.port}` });
});

test.beforeEach((t) => {
  t.context.proxy.mode = 'pass';
});

test.after.always(async (t) => {
  for (const fn of t.context.cleanup ?? []) await fn().catch(() => undefined);
});

// Every test here talks to the one ingest process, and one of them kills it: run them one by one.
const fast: VoterClientOptions['retry'] = {
  retryDelayMsBase: 50,
  retryDelayMsMax: 500,
  attemptsMax: 4,
  retryBudgetMs: 20_000,
};

test.serial(
  'a vote cast through the SDK is accepted by ingest, is in the votes topic once, and has a pending receipt',
  async (t) => {
    const { apiUrl, prefix } = t.context;
    const { pollId } = await createPoll(apiUrl, await admin());
    const voterId = uniqueId('voter-');
    const token = await devToken(voterId);
    const phases = new Set<string>();
    const client = createVoterClient({
      apiUrl,
      getToken: () => token,
      onProgress: (p) => phases.add(p.phase),
      retry: fast,
      // The app's Play Integrity / App Attest token: passed through to the vote record for checking later.
      getAttestation: () => 'eyJhbGciOiJFUzI1NiJ9.integrity-verdict.c2ln',
    });

    const outcome = await client.castVote(pollId, 'b');
    t.like(outcome, { kind: 'accepted', pollId, optionId: 'b', replayed: false });
    t.true(phases.has('challenge') && phases.has('sending'));
    t.deepEqual(await client.pendingVotes(), []);

    const mine = (await readAllVotes(prefix)).filter((v) => v.voterId === voterId);
    t.is(mine.length, 1);
    t.is(mine[0]?.voteId, outcome.kind === 'accepted' ? outcome.voteId : 'missing');
    t.is(mine[0]?.evidence.challenge, 'SOLVED');
    t.is(mine[0]?.evidence.attestation, 'eyJhbGciOiJFUzI1NiJ9.integrity-verdict.c2ln');

    const receipt = await client.getReceipt(pollId);
    // No stream processor runs in this test, so no decision exists: the receipt can only be pending.
    t.like(receipt, { kind: 'receipt', voteId: mine[0]?.voteId, optionId: 'b', status: 'pending' });

    // The same voter on another device (a fresh outbox, so a new Idempotency-Key): already voted, naming the vote that counts.
    const otherDevice = createVoterClient({ apiUrl, getToken: () => token, retry: fast });
    t.like(await otherDevice.castVote(pollId, 'a'), { kind: 'already_voted', voteId: mine[0]?.voteId });
  },
);

test.serial('ingest refusals arrive as typed outcomes and leave nothing queued', async (t) => {
  const { apiUrl } = t.context;
  const { pollId } = await createPoll(apiUrl, await admin());
  const later = await createPoll(apiUrl, await admin(), { opensAt: new Date(Date.now() + 3_600_000).toISOString() });
  const closed = await createPoll(apiUrl, await admin());
  await closePoll(apiUrl, await admin(), closed.pollId);
  const token = await devToken(uniqueId('voter-'));
  const client = createVoterClient({ apiUrl, getToken: () => token, retry: fast });

  t.like(await client.castVote(pollId, 'zzz'), { kind: 'unknown_option', status: 400 });
  t.like(await client.castVote(uniqueId('no-such-poll-'), 'a'), { kind: 'poll_not_found', status: 404 });
  t.like(await client.castVote(later.pollId, 'a'), { kind: 'poll_not_open', status: 409 });
  t.like(await client.castVote(closed.pollId, 'a'), { kind: 'poll_closed', status: 409 });
  t.deepEqual(await client.pendingVotes(), []);
  t.like(await client.getReceipt(pollId), { kind: 'no_vote', queuedInOutbox: false });

  // A forged token: unauthenticated, and the vote stays queued until the voter signs in again.
  let current = `${token.slice(0, -4)}AAAA`;
  const storage = createMemoryStorage();
  const signedOut = createVoterClient({ apiUrl, getToken: () => current, storage, retry: fast });
  t.like(await signedOut.castVote(pollId, 'a'), { kind: 'unauthenticated', queued: true });
  t.is((await signedOut.pendingVotes()).length, 1);
  current = token;
  t.like(await signedOut.flushOutbox(), [{ pollId, outcome: { kind: 'accepted', optionId: 'a' } }]);
});

test.serial(
  'the network is cut after ingest took the vote: the retry with the same key gets the original answer, one vote in Kafka',
  async (t) => {
    const { apiUrl, prefix, proxy } = t.context;
    const { pollId } = await createPoll(apiUrl, await admin());
    const voterId = uniqueId('voter-');
    const token = await devToken(voterId);
    // The challenge fetch passes; the proxy starts swallowing answers when the vote's POST is about to leave, and
    // lets traffic through again as soon as it has swallowed one.
    const dropsBefore = proxy.droppedResponses;
    const cutting = createVoterClient({
      apiUrl,
      getToken: () => token,
      retry: fast,
      onProgress: (p) => {
        if (p.phase === 'sending' && proxy.droppedResponses === dropsBefore) proxy.mode = 'drop-responses';
      },
    });
    const dropped = proxy.nextDrop().then(() => {
      proxy.mode = 'pass';
    });
    const outcome = await cutting.castVote(pollId, 'a');
    await withTimeout(dropped, 60_000, "the proxy drops the vote's answer");
    t.is(proxy.droppedResponses, dropsBefore + 1);
    t.like(outcome, { kind: 'accepted', optionId: 'a', replayed: true });

    const mine = (await readAllVotes(prefix)).filter((v) => v.voterId === voterId);
    t.is(mine.length, 1);
    t.is(mine[0]?.voteId, outcome.kind === 'accepted' ? outcome.voteId : 'missing');
  },
);

test.serial(
  'ingest is killed in the middle of a vote; after an app restart the outbox resend yields exactly one accepted vote',
  async (t) => {
    const { apiUrl, prefix, redisPrefix, proxy } = t.context;
    const { pollId } = await createPoll(apiUrl, await admin());
    const voterId = uniqueId('voter-');
    const token = await devToken(voterId);
    const storage = createMemoryStorage(); // stands for AsyncStorage: it outlives the client objects below

    // The vote's POST reaches ingest, ingest writes it to Kafka and answers; the answer is lost and ingest is killed
    // (SIGKILL: no drain, no goodbye) before the app hears anything. Further attempts find no server.
    const firstRun = createVoterClient({
      apiUrl,
      getToken: () => token,
      storage,
      retry: { ...fast, attemptsMax: 3 },
      requestTimeoutMs: 2000,
      onProgress: (p) => {
        if (p.phase === 'sending' && proxy.droppedResponses === dropsBefore) proxy.mode = 'drop-responses';
      },
    });
    const dropsBefore = proxy.droppedResponses;
    const killed = proxy.nextDrop().then(async () => {
      proxy.mode = 'blackhole';
      await t.context.running.ingest.process.kill9();
    });
    const first = await firstRun.castVote(pollId, 'b');
    await withTimeout(killed, 60_000, 'the proxy drops the answer and ingest is killed');
    t.like(first, { kind: 'network_error', queued: true });
    const [queued] = await firstRun.pendingVotes();
    t.like(queued, { pollId, optionId: 'b', sent: true });

    // Ingest comes back (a new process, same topics and Redis); the app restarts (a new client, same storage).
    const ingest = await startIngest(prefix, redisPrefix, `ingest-${prefix.slice(6, 16)}-2`);
    t.context.running.ingest = ingest;
    proxy.retarget(ingest.port);
    proxy.mode = 'pass';
    const secondRun = createVoterClient({ apiUrl, getToken: () => token, storage, retry: fast });
    const flushed = await secondRun.flushOutbox();
    t.is(flushed.length, 1);
    const outcome = flushed[0]?.outcome;
    t.like(outcome, {
      kind: 'accepted',
      pollId,
      optionId: 'b',
      idempotencyKey: queued?.idempotencyKey,
      replayed: true,
    });
    t.deepEqual(await secondRun.pendingVotes(), []);

    const mine = (await readAllVotes(prefix)).filter((v) => v.voterId === voterId);
    t.is(mine.length, 1, 'exactly one vote in Kafka');
    t.is(
      mine[0]?.voteId,
      outcome?.kind === 'accepted' ? outcome.voteId : 'missing',
      'the resend got the original voteId',
    );
    t.is(mine[0]?.idempotencyKey, queued?.idempotencyKey);
  },
);
