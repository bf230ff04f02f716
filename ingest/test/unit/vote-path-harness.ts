// The vote path in-process, without the stack: the real Express app (app.ts, routes, error handler), token
// verifier, challenge issuer and batcher, in front of fakes of what service.ts would connect to: the Kafka
// producer, the Redis-backed stores (vote guards, rate limits, revocations, challenge counters) and the poll
// catalog. A plain http server on port 0, and a clock the test moves. Fakes only here, for the route logic;
// ingest/test/*.test.ts and tests/system run the same routes against the real services.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Receipt } from '@votestream/read-models';
import { createLogger } from '@votestream/runtime';
import type { PollDefinition, VoteCast } from '@votestream/schemas';
import { solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import type { Message, ProducerRecord, RecordMetadata } from 'kafkajs';
import { Registry } from 'prom-client';
import { createChallengeIssuer } from '../../src/abuse/challenge.ts';
import { createIngestApp } from '../../src/app.ts';
import { type IngestConfig, loadIngestConfig } from '../../src/config.ts';
import type { IngestContext } from '../../src/context.ts';
import { createClientAddressResolver } from '../../src/http/client-address.ts';
import { createIngestMetrics } from '../../src/metrics.ts';
import type { CatalogEntry } from '../../src/polls/catalog.ts';
import { batcherLimitsOf, tokenVerifierOf } from '../../src/service.ts';
import { mintToken } from '../../src/tools/tokens-dev.ts';
import type { Admission, GuardKeys, VoteGuards } from '../../src/votes/admission.ts';
import { VoteBatcher } from '../../src/votes/batcher.ts';
import type { Resolution } from '../../src/votes/resolution.ts';

/** A Kafka producer whose acknowledgements the test decides: at once (`ack`), never (`fail`), or when released. */
export class FakeProducer {
  mode: 'ack' | 'fail' | 'hold' = 'ack';
  /** Every message of every send that was acknowledged. */
  readonly acknowledged: Message[] = [];
  /** Sends waiting for `release()` (mode `hold`). */
  readonly held: { record: ProducerRecord; settle: (ok: boolean) => void }[] = [];
  sends = 0;

  async send(record: ProducerRecord): Promise<RecordMetadata[]> {
    this.sends++;
    if (this.mode === 'fail') throw new Error('broker gone');
    if (this.mode === 'hold') {
      const ok = await new Promise<boolean>((settle) => this.held.push({ record, settle }));
      if (!ok) throw new Error('broker gone');
    }
    this.acknowledged.push(...record.messages);
    return [];
  }

  /** Settles every held send: acknowledged (`ok`) or failed. */
  release(ok = true): void {
    for (const h of this.held.splice(0)) h.settle(ok);
  }
}

/**
 * The vote guards in memory, with the admission script's main rules (a free voter is admitted; a done record is
 * replayed; a voter with another vote is already_voted or in flight; a challenge is taken once). `script` makes the
 * next `admit` answer something else, for the outcomes that need a second process or an expired lease.
 */
export class FakeGuards implements VoteGuards {
  readonly voted = new Map<string, string>();
  readonly idem = new Map<string, string>();
  readonly challenges = new Map<string, string>();
  /** Method names in call order. */
  readonly calls: string[] = [];
  readonly scripted: Admission[] = [];
  /** When set, `admit` rejects with it (Redis unreachable). */
  failure: Error | undefined;

  script(...answers: Admission[]): void {
    this.scripted.push(...answers);
  }

  keys(pollId: string, voterId: string, idempotencyKey: string): GuardKeys {
    const tag = `{${pollId}/${voterId}}`;
    return { voted: `voted:${tag}`, idem: `idem:${tag}:${idempotencyKey}`, lease: `lease:${tag}` };
  }

  async admit(a: Parameters<VoteGuards['admit']>[0]): Promise<Admission> {
    this.calls.push('admit');
    if (this.failure) throw this.failure;
    const scripted = this.scripted.shift();
    if (scripted) return scripted;
    const record = this.idem.get(a.keys.idem);
    if (record?.startsWith('{"s":"D"')) return { kind: 'replay', record: JSON.parse(record) };
    if (record !== undefined && record.slice(8) !== a.idemPending.slice(8)) return { kind: 'key_reused' };
    const guard = this.voted.get(a.keys.voted);
    if (guard !== undefined) {
      const [voteId = ''] = guard.split('|');
      if (guard.endsWith('|D'))
        return voteId === a.voteId ? { kind: 'acknowledged', guard } : { kind: 'already_voted', voteId };
      return { kind: 'in_flight', retryAfterMs: 60_000 };
    }
    if (a.challengeId !== null) {
      if (this.challenges.has(a.challengeId)) return { kind: 'challenge_replayed' };
      this.challenges.set(a.challengeId, a.voteId);
    }
    this.voted.set(a.keys.voted, a.guardValue);
    this.idem.set(a.keys.idem, a.idemPending);
    return { kind: 'admitted', guard: a.guardValue };
  }

  async complete(keys: GuardKeys, guard: string, recordJson: string): Promise<boolean> {
    this.calls.push('complete');
    const ours = this.voted.get(keys.voted) === guard;
    if (ours) this.voted.set(keys.voted, `${guard}|D`);
    this.idem.set(keys.idem, recordJson);
    return ours;
  }

  async fail(keys: GuardKeys, idemPending: string): Promise<void> {
    this.calls.push('fail');
    if (this.idem.get(keys.idem) === idemPending) this.idem.set(keys.idem, `{"s":"F"${idemPending.slice(8)}`);
  }

  async release(a: Parameters<VoteGuards['release']>[0]): Promise<void> {
    this.calls.push('release');
    if (this.voted.get(a.keys.voted) === a.guardValue) this.voted.delete(a.keys.voted);
    if (this.idem.get(a.keys.idem) === a.idemPending) this.idem.delete(a.keys.idem);
    if (a.challengeId !== null && this.challenges.get(a.challengeId) === a.voteId)
      this.challenges.delete(a.challengeId);
  }

  async releaseChallenge(challengeId: string, voteId: string): Promise<void> {
    this.calls.push('releaseChallenge');
    if (this.challenges.get(challengeId) === voteId) this.challenges.delete(challengeId);
  }

  async settle(keys: GuardKeys, stale: string, decided: string | null): Promise<boolean> {
    this.calls.push(`settle:${decided === null ? 'free' : 'decided'}`);
    if (this.voted.get(keys.voted) !== stale) return false;
    if (decided === null) this.voted.delete(keys.voted);
    else this.voted.set(keys.voted, decided);
    return true;
  }

  async pending(pollId: string, voterId: string) {
    const guard = this.voted.get(`voted:{${pollId}/${voterId}}`);
    if (guard === undefined) return null;
    const [voteId = '', optionId = ''] = guard.split('|');
    return { voteId, optionId };
  }
}

/** A clock the test moves; `now()` is what the routes and the batcher read. */
export class FakeClock {
  constructor(public ms: number) {}
  readonly now = () => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface VotePathOptions {
  /** Env overrides for loadIngestConfig (the defaults are production's). */
  env?: Record<string, string>;
}

export interface VoteResponse {
  status: number;
  body: Record<string, unknown> | null;
  retryAfter: string | null;
}

const silent = createLogger('ingest-unit', 'silent');

/** The ingest app on port 0 over fakes; `close()` in the test's teardown. */
export async function startVotePath(opts: VotePathOptions = {}) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const hmacKey = randomBytes(32).toString('hex');
  // The key files a deployment mounts (SECRETS_DIR), written for this test: no stack secrets needed.
  const dir = mkdtempSync(join(tmpdir(), 'ingest-unit-'));
  writeFileSync(join(dir, 'jwt.pem'), publicKey.export({ type: 'spki', format: 'pem' }).toString());
  writeFileSync(join(dir, 'altcha.key'), hmacKey);
  const config: IngestConfig = loadIngestConfig({
    JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pem'),
    ALTCHA_HMAC_KEY_FILE: join(dir, 'altcha.key'),
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  rmSync(dir, { recursive: true });
  const clock = new FakeClock(Date.now());
  const producer = new FakeProducer();
  const guards = new FakeGuards();
  const polls = new Map<string, CatalogEntry>();
  const revoked = new Set<string>();
  const limits = { retryAfterS: 0, consumed: 0 };
  const resolutions: (Resolution | Error)[] = [];
  const receipts = new Map<string, Receipt>();
  const registry = new Registry();
  const metrics = createIngestMetrics(registry);
  const batcher = new VoteBatcher(producer, 'votes', batcherLimitsOf(config), metrics, clock.now);
  const challenges = createChallengeIssuer({ hmacKey, expiresS: config.altchaExpiresS });
  const ctx: IngestContext = {
    config,
    logger: silent,
    metrics,
    now: clock.now,
    verifyToken: tokenVerifierOf(config),
    revocations: {
      isRevoked: async (jti) => revoked.has(jti),
      revoke: async (jti) => revoked.add(jti).size,
    },
    clientAddress: createClientAddressResolver({ source: 'socket', trustProxyHops: 1, trustedProxyCidrs: [] }),
    challenges,
    challengePolicy: { admit: async () => config.altchaMaxNumber },
    rateLimits: {
      consume: async () => {
        limits.consumed++;
        return limits.retryAfterS;
      },
    },
    pollCreateLimit: async () => 0,
    guards,
    catalog: { get: (pollId) => polls.get(pollId) },
    pollAdmin: {
      create: async () => {
        throw new Error('not used by the vote path');
      },
      close: async () => {
        throw new Error('not used by the vote path');
      },
    },
    batcher,
    // The Avro encoder needs the schema registry; the unit tests read the vote back as JSON.
    encodeVote: (v) => Buffer.from(JSON.stringify(v)),
    readModels: {
      getResults: async () => null,
      getReceipt: async (pollId, voterId) => receipts.get(`${pollId}/${voterId}`) ?? null,
    },
    resolver: {
      resolve: async () => {
        const next = resolutions.shift();
        if (next === undefined) throw new Error('the test scripted no resolution');
        if (next instanceof Error) throw next;
        return next;
      },
    },
    produceAppendBoundMs: 0,
    faults: undefined,
    isReady: () => true,
  };
  const server: Server = createServer(createIngestApp(ctx));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    config,
    clock,
    producer,
    guards,
    batcher,
    revoked,
    limits,
    /** Answers of the stream's read barrier, in order (votes/resolution.ts). */
    resolutions,
    receipts,
    registry,
    /** A poll in the catalog, open from now on unless the times say otherwise. */
    addPoll(p: Partial<PollDefinition> = {}): PollDefinition {
      const poll: PollDefinition = {
        pollId: `p-${randomBytes(4).toString('hex')}`,
        title: 'Who should win?',
        options: [
          { id: 'a', label: 'Alice' },
          { id: 'b', label: 'Bob' },
        ],
        opensAt: clock.ms - 1000,
        closesAt: null,
        closedAt: null,
        ...p,
      };
      polls.set(poll.pollId, { poll, offset: polls.size, optionIds: new Set(poll.options.map((o) => o.id)) });
      return poll;
    },
    token: (voterId: string, extra: { jti?: string } = {}) => mintToken({ privateKeyPem, sub: voterId, ...extra }),
    /** An X-Altcha value solved for this voter in this poll, as the SDK sends it. */
    async solved(voterId: string, pollId: string, maxNumber = 50): Promise<string> {
      const challenge = await challenges.issue(challenges.bind(voterId, pollId), maxNumber);
      const solution = await solveChallenge({ challenge, deriveKey });
      return Buffer.from(JSON.stringify({ challenge, solution })).toString('base64');
    },
    /** POST a vote; resolves when answered. */
    async vote(
      pollId: string,
      o: { token: string; optionId?: string; idempotencyKey?: string; altcha?: string; body?: string },
    ): Promise<VoteResponse> {
      const headers: Record<string, string> = {
        authorization: `Bearer ${o.token}`,
        'content-type': 'application/json',
        'idempotency-key': o.idempotencyKey ?? randomUUID(),
        'user-agent': 'unit-test',
      };
      if (o.altcha !== undefined) headers['x-altcha'] = o.altcha;
      const res = await fetch(`${url}/v1/polls/${pollId}/votes`, {
        method: 'POST',
        headers,
        body: o.body ?? JSON.stringify({ optionId: o.optionId ?? 'a' }),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: text === '' ? null : JSON.parse(text),
        retryAfter: res.headers.get('retry-after'),
      };
    },
    /** The votes Kafka acknowledged, decoded. */
    acknowledgedVotes(): VoteCast[] {
      return producer.acknowledged.map((m) => JSON.parse(String(m.value)) as VoteCast);
    },
    /** `ingest_votes_total{outcome}` now. */
    async outcomes(): Promise<Record<string, number>> {
      const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'ingest_votes_total');
      const counts: Record<string, number> = {};
      for (const v of (metric?.values ?? []) as { value: number; labels: { outcome?: string } }[]) {
        counts[String(v.labels.outcome)] = v.value;
      }
      return counts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type VotePath = Awaited<ReturnType<typeof startVotePath>>;

/** Waits until `check` holds (polling, no fixed sleep); fails after `deadlineMs`. */
export async function until(check: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not reached within ${deadlineMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
