// Helpers shared by the stream integration tests: topics under a unique prefix, processors as child processes
// with their JSON log lines captured, and vote/poll builders. Everything talks to the real local stack.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  createAvroSerde,
  type PollDefinition,
  type TallyUpdate,
  type VoteCast,
  type VoteDecision,
} from '@votestream/schemas';
import type { ExecutionContext } from 'ava';
import type { Admin, Kafka } from 'kafkajs';
import { repoRoot, stack } from '../../tests/support/stack.ts';

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
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      topic('votes', partitions.votes),
      topic('polls', 1, true),
      topic('vote-decisions', partitions.votes),
      topic('tally-partials', partitions.partials),
      topic('tallies', 1),
      topic('analytics-votes', partitions.votes),
      topic('dead-letters', 1),
    ],
  });
}

export function makeVote(pollId: string, voterId: string, optionId: string, receivedAt: number): VoteCast {
  return {
    voteId: randomUUID(),
    pollId,
    optionId,
    voterId,
    idempotencyKey: randomUUID(),
    castAt: null,
    receivedAt,
    evidence: {
      challenge: 'NOT_REQUIRED',
      challengeId: null,
      tokenId: null,
      networkPrefix: '127.0.0.0/24',
      userAgent: null,
      deviceId: null,
      attestation: null,
    },
  };
}

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
}

/**
 * Starts `node --import tsx stream/src/main.ts` with the given environment on top of the test's, logs at info
 * level on a pipe (parsed line by line), and registers it in `children` so the test's teardown kills it. If it
 * exits without the test having killed it, the test fails.
 */
export function startProcessor(
  t: ExecutionContext,
  children: Set<ChildProcess>,
  name: string,
  env: Record<string, string>,
): Processor {
  const child = spawn(process.execPath, ['--import', 'tsx', 'stream/src/main.ts'], {
    cwd: repoRoot,
    env: { ...process.env, STREAM_METRICS_PORT: '0', LOG_LEVEL: 'info', ...env },
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
  return {
    name,
    child,
    logs,
    exited,
    lines: (msg) => logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg)),
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
  return {
    encodeVote: serde.encoder('VoteCast'),
    encodePoll: serde.encoder('PollEvent'),
    producer,
    decisions,
    tallies,
  };
}
