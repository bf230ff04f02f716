// Helpers shared by the stream integration tests: the set-up every test repeats (a unique prefix and keyspace,
// Kafka and CQL clients, topics, teardown), processors as child processes with their JSON log lines captured and
// their task states polled from /readyz, and vote/poll builders. Everything talks to the real local stack.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort } from '@votestream/devstack';
import {
  applyCqlMigrations,
  type CqlClient,
  createCqlClient,
  createKafka,
  createLogger,
  type Logger,
  waitForLeaders,
} from '@votestream/runtime';
import {
  createAvroSerde,
  type PollDefinition,
  type TallyUpdate,
  type VoteCast,
  type VoteDecision,
} from '@votestream/schemas';
import type { ExecutionContext } from 'ava';
import type { Admin, Kafka } from 'kafkajs';
import { eventually, repoRoot, stack, uniqueId } from '../../tests/support/stack.ts';
import type { TaskState } from '../src/runtime/task.ts';
import type { TaskReport } from '../src/runtime/task-manager.ts';

export interface StreamTest {
  id: string;
  /** Topic prefix of the test (`t-<id>.`). */
  prefix: string;
  /** CQL keyspace of the test (migrated), when asked for. */
  keyspace: string;
  logger: Logger;
  kafka: Kafka;
  admin: Admin;
  /** Present when the test asked for CQL: the keyspace is migrated and dropped at teardown. */
  cql: CqlClient | undefined;
  /** Processes the test started; killed at teardown. */
  children: Set<ChildProcess>;
}

/**
 * The set-up of a stream test: a unique id, prefix and keyspace, an admin client, the public topics (see
 * createStreamTopics), with `cql` a migrated keyspace; teardown kills the processors, drops the keyspace and
 * closes the clients.
 */
export async function streamTest(
  t: ExecutionContext,
  tag: string,
  opts: { cql: true; partitions?: { votes: number; partials: number } },
): Promise<StreamTest & { cql: CqlClient }>;
export async function streamTest(
  t: ExecutionContext,
  tag: string,
  opts?: { cql?: false; partitions?: { votes: number; partials: number } },
): Promise<StreamTest>;
export async function streamTest(
  t: ExecutionContext,
  tag: string,
  opts: { cql?: boolean; partitions?: { votes: number; partials: number } } = {},
): Promise<StreamTest> {
  const id = uniqueId(tag);
  const prefix = `t-${id}.`;
  const keyspace = `st_${id}`;
  const logger = createLogger('stream-test', 'warn');
  const kafka = createKafka({ clientId: id, brokers: stack.kafkaBrokers, logger });
  const admin = kafka.admin();
  await admin.connect();
  const cql = opts.cql
    ? createCqlClient({ contactPoints: stack.cqlContactPoints, localDataCenter: stack.cqlLocalDataCenter })
    : undefined;
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await admin.disconnect().catch(() => {});
    if (cql) {
      await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
      await cql.shutdown().catch(() => {});
    }
  });
  if (cql) {
    await applyCqlMigrations({
      client: cql,
      keyspace,
      dir: fileURLToPath(new URL('../../migrations/cql/', import.meta.url)),
    });
  }
  await createStreamTopics(admin, prefix, opts.partitions);
  return { id, prefix, keyspace, logger, kafka, admin, cql, children };
}

/** Creates the public topics a stream processor needs (auto-creation is off), with the given partition counts. */
export async function createStreamTopics(
  admin: Admin,
  prefix: string,
  partitions: { votes: number; partials: number } = { votes: 4, partials: 2 },
): Promise<void> {
  const topic = (name: string, numPartitions: number, compact = false) => ({
    topic: `${prefix}${name}`,
    numPartitions,
    replicationFactor: 1,
    configEntries: compact ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
  });
  // KafkaJS's own waitForLeaders can throw UNKNOWN_TOPIC_OR_PARTITION while a busy broker is still applying the
  // new topics' metadata (seen under load): the runtime's bounded wait instead.
  const specs = [
    topic('votes', partitions.votes),
    topic('polls', 1, true),
    topic('vote-decisions', partitions.votes),
    topic('tally-partials', partitions.partials),
    topic('tallies', 1),
    topic('analytics-votes', partitions.votes),
    topic('dead-letters', 1),
  ];
  await admin.createTopics({ waitForLeaders: false, topics: specs });
  await waitForLeaders(
    admin,
    specs.map((t) => t.topic),
  );
}

/** The kit's VoteCast (libs/devstack): one definition for every test that writes votes straight to Kafka. */
export { makeVote } from '@votestream/devstack';

export function makePoll(pollId: string, options: string[], over: Partial<PollDefinition> = {}): PollDefinition {
  return {
    pollId,
    title: pollId,
    options: options.map((o) => ({ id: o, label: o })),
    opensAt: Date.now() - 3_600_000,
    closesAt: null,
    closedAt: null,
    ...over,
  };
}

/** A processor child process and the pino JSON lines it wrote to stdout. */
export interface Processor {
  name: string;
  child: ChildProcess;
  logs: Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Log lines whose msg starts with `msg`. */
  lines(msg: string): Array<Record<string, unknown>>;
  /** STREAM_METRICS_PORT of the process (/metrics, /readyz). */
  metricsPort: number;
  /** The tasks the process owns and their states, from /readyz; undefined while it does not answer. */
  tasks(): Promise<TaskReport[] | undefined>;
  /** The sum of metric `name` over the series whose labels include `labels`; undefined while it does not answer. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

/** Polls `p`'s /readyz until its `stage` has `partitions` tasks all in `state` (default running). */
export async function waitForTasks(
  p: Processor,
  stage: string,
  partitions: number,
  timeoutMs = 90_000,
  state: TaskState = 'running',
): Promise<TaskReport[]> {
  return eventually(
    `${p.name} has ${partitions} ${stage} tasks ${state}`,
    async () => {
      const tasks = (await p.tasks())?.filter((x) => x.stage === stage);
      return tasks && tasks.length === partitions && tasks.every((x) => x.state === state) ? tasks : undefined;
    },
    timeoutMs,
  );
}

/**
 * Starts `node --import tsx stream/src/main.ts` with the given environment on top of the test's, logs at info
 * level on a pipe (parsed line by line), and registers it in `children` so the test's teardown kills it. If it
 * exits without the test having killed it, the test fails.
 */
export async function startProcessor(
  t: ExecutionContext,
  children: Set<ChildProcess>,
  name: string,
  env: Record<string, string>,
): Promise<Processor> {
  const metricsPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'stream/src/main.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      STREAM_METRICS_PORT: String(metricsPort),
      STREAM_METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const text = rest + d.toString();
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
      const last = logs[logs.length - 1];
      if (process.env.STREAM_TEST_ECHO && last) t.log(name, JSON.stringify(last));
    }
  });
  children.add(child);
  // An exit the test did not cause (by kill() with a terminating signal) fails the test while it runs.
  let stopRequested = false;
  let testOver = false;
  t.teardown(() => {
    testOver = true;
  });
  const kill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number) => {
    if (signal === undefined || signal === 'SIGTERM' || signal === 'SIGKILL' || signal === 'SIGINT')
      stopRequested = true;
    return kill(signal);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (!stopRequested && !testOver) t.fail(`${name} exited with ${code ?? signal} on its own`);
      resolve({ code, signal });
    });
  });
  const get = async (path: string): Promise<string | undefined> => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}${path}`, { signal: AbortSignal.timeout(2000) }).catch(
      () => undefined,
    );
    return res?.ok ? res.text() : undefined;
  };
  return {
    name,
    child,
    logs,
    exited,
    lines: (msg) => logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg)),
    metricsPort,
    tasks: async () => {
      const body = await get('/readyz');
      return body === undefined ? undefined : (JSON.parse(body) as { tasks: TaskReport[] }).tasks;
    },
    metric: async (metricName, labels = {}) => {
      const body = await get('/metrics');
      if (body === undefined) return undefined;
      let sum = 0;
      for (const line of body.split('\n')) {
        if (!line.startsWith(`${metricName}{`) && !line.startsWith(`${metricName} `)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
          sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a test needs around the processors: encoders for votes and polls under its own subject prefix, a producer,
 * and a read_committed reader that collects every committed decision (by voteId) and tally (by pollId).
 */
export async function pipelineHarness(t: ExecutionContext, kafka: Kafka, prefix: string, id: string) {
  const serde = await createAvroSerde({ registryUrl: stack.schemaRegistryUrl, subjectPrefix: `${id}.` });
  const decodeDecision = serde.decoder('VoteDecision');
  const decodeTally = serde.decoder('TallyUpdate');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());

  const decisions = new Map<string, VoteDecision[]>();
  const tallies = new Map<string, TallyUpdate[]>();
  const reader = kafka.consumer({ groupId: `${id}-verify`, readUncommitted: false, maxWaitTimeInMs: 100 });
  t.teardown(() => reader.disconnect());
  await reader.connect();
  await reader.subscribe({ topics: [`${prefix}vote-decisions`, `${prefix}tallies`], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic, message }) => {
      if (!message.value) return;
      if (topic.endsWith('vote-decisions')) {
        const d = await decodeDecision(message.value);
        decisions.set(d.vote.voteId, [...(decisions.get(d.vote.voteId) ?? []), d]);
      } else {
        const u = await decodeTally(message.value);
        tallies.set(u.pollId, [...(tallies.get(u.pollId) ?? []), u]);
      }
    },
  });
  const encodeVote = serde.encoder('VoteCast');
  const encodePoll = serde.encoder('PollEvent');
  return {
    encodeVote,
    encodePoll,
    producer,
    decisions,
    tallies,
    /** One PollEvent on `polls` (acks all). */
    sendPoll: (type: 'CREATED' | 'CLOSED', poll: PollDefinition) =>
      producer.send({
        topic: `${prefix}polls`,
        acks: -1,
        messages: [
          { key: poll.pollId, value: encodePoll({ eventId: randomUUID(), type, occurredAt: Date.now(), poll }) },
        ],
      }),
    /** Votes on `votes`, keyed pollId/voterId as ingest keys them (acks all). */
    sendVotes: (votes: VoteCast[]) =>
      producer.send({
        topic: `${prefix}votes`,
        acks: -1,
        messages: votes.map((v) => ({ key: `${v.pollId}/${v.voterId}`, value: encodeVote(v) })),
      }),
  };
}
