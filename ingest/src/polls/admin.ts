import { randomBytes, randomUUID } from 'node:crypto';
import type { RedisClient } from '@votestream/runtime';
import { idPattern, idSyntax, type PollDefinition, type PollEvent, type PollEventType } from '@votestream/schemas';
import type { Producer } from 'kafkajs';
import { ProblemError } from '../http/problem.ts';
import { closeTimeOf, type PollCatalog, pollStatus } from './catalog.ts';

const optionsMin = 2;
const optionsMax = 64;
const textCharsMax = 200;

export interface PollView {
  pollId: string;
  title: string;
  options: { id: string; label: string }[];
  opensAt: string;
  closesAt: string | null;
  status: 'scheduled' | 'open' | 'closed';
}

export function pollView(poll: PollDefinition, now: number): PollView {
  const ends = closeTimeOf(poll);
  return {
    pollId: poll.pollId,
    title: poll.title,
    options: poll.options.map((o) => ({ id: o.id, label: o.label })),
    opensAt: new Date(poll.opensAt).toISOString(),
    closesAt: ends === null ? null : new Date(ends).toISOString(),
    status: pollStatus(poll, now),
  };
}

const invalid = (detail: string) => new ProblemError('invalid_body', detail);

function isoMillis(value: unknown, field: string): number {
  if (typeof value !== 'string' || value.length > 40) throw invalid(`${field} must be an ISO 8601 date-time string`);
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalid(`${field} must be an ISO 8601 date-time string`);
  return ms;
}

/** Validates `POST /v1/polls`; the admin path is not hot, so clarity beats speed here. */
export function parseCreatePoll(body: unknown, now: number): PollDefinition {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['pollId', 'title', 'options', 'opensAt', 'closesAt'].includes(k)) throw invalid(`unknown field ${k}`);
  }
  const pollId = b.pollId === undefined ? `p-${randomBytes(8).toString('hex')}` : b.pollId;
  if (typeof pollId !== 'string' || !idPattern.test(pollId)) throw invalid(`pollId must match ${idSyntax}`);
  if (typeof b.title !== 'string' || b.title.trim() === '' || b.title.length > textCharsMax) {
    throw invalid(`title must be a non-empty string of at most ${textCharsMax} characters`);
  }
  if (!Array.isArray(b.options) || b.options.length < optionsMin || b.options.length > optionsMax) {
    throw invalid(`options must be an array of ${optionsMin} to ${optionsMax} options`);
  }
  const seen = new Set<string>();
  const options = b.options.map((o: unknown, i: number) => {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalid(`options[${i}] must be an object`);
    const { id, label, ...rest } = o as Record<string, unknown>;
    if (Object.keys(rest).length > 0) throw invalid(`options[${i}] has unknown field ${Object.keys(rest)[0]}`);
    if (typeof id !== 'string' || !idPattern.test(id)) throw invalid(`options[${i}].id must match ${idSyntax}`);
    if (seen.has(id)) throw invalid(`options[${i}].id ${id} is not unique`);
    seen.add(id);
    if (typeof label !== 'string' || label.trim() === '' || label.length > textCharsMax) {
      throw invalid(`options[${i}].label must be a non-empty string of at most ${textCharsMax} characters`);
    }
    return { id, label };
  });
  const opensAt = b.opensAt === undefined ? now : isoMillis(b.opensAt, 'opensAt');
  const closesAt = b.closesAt === undefined || b.closesAt === null ? null : isoMillis(b.closesAt, 'closesAt');
  if (closesAt !== null && closesAt <= opensAt) throw invalid('closesAt must be after opensAt');
  return { pollId, title: b.title, options, opensAt, closesAt, closedAt: null };
}

/**
 * The admin side of the poll catalog. Writes go to the polls topic (acks = all) and are applied to this
 * instance's catalog at the record's offset before answering, so the admin reads their own write here;
 * other instances see it when their catalog consumer reads it (milliseconds).
 *
 * Creation is race-free across instances: `SET NX <p>poll:<pollId>` claims the id before producing;
 * the loser answers 409 poll_exists. If the produce fails the claim is released (compare-and-delete)
 * so the admin can retry. Closing is idempotent and agrees across instances: `SET NX
 * <p>poll-closed:<pollId> <closedAt>` fixes one closedAt (the first request's time + POLL_CLOSE_LEAD_MS), and
 * every instance produces that one.
 */
export class PollAdmin {
  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    private readonly topic: string,
    private readonly encode: (e: PollEvent) => Buffer,
    private readonly catalog: PollCatalog,
    private readonly redis: RedisClient,
    private readonly redisPrefix: string,
    /** Polls accepted at most (POLLS_MAX, at most catalogPollsMax). */
    private readonly pollsMax: number,
    /** A close takes effect this long after the request (POLL_CLOSE_LEAD_MS): every instance reads it first. */
    private readonly closeLeadMs: number,
  ) {}

  private async write(type: PollEventType, poll: PollDefinition, now: number): Promise<void> {
    const event: PollEvent = { eventId: randomUUID(), type, occurredAt: now, poll };
    const [meta] = await this.producer.send({
      topic: this.topic,
      messages: [{ key: poll.pollId, value: this.encode(event) }],
      acks: -1,
      timeout: 10_000,
    });
    const offset = meta?.baseOffset ?? meta?.offset;
    if (offset !== undefined) this.catalog.apply(event, Number(offset));
  }

  async create(poll: PollDefinition, now: number): Promise<PollDefinition> {
    if (this.catalog.get(poll.pollId)) throw new ProblemError('poll_exists', `poll ${poll.pollId} already exists`);
    // Before anything is written: a poll over the cap must never reach the polls topic, where every instance's
    // catalog would have to refuse it. Creations in flight count too, so concurrent admins here cannot overshoot.
    if (this.catalog.size + this.creating >= this.pollsMax) {
      throw new ProblemError('poll_limit_reached', `this deployment holds at most POLLS_MAX=${this.pollsMax} polls`);
    }
    this.creating++;
    try {
      return await this.claimAndWrite(poll, now);
    } finally {
      this.creating--;
    }
  }

  /** Creations on this instance between the cap check and the catalog applying the write. */
  private creating = 0;

  private async claimAndWrite(poll: PollDefinition, now: number): Promise<PollDefinition> {
    const claimKey = `${this.redisPrefix}poll:${poll.pollId}`;
    const claim = randomUUID();
    if ((await this.redis.set(claimKey, claim, 'NX')) !== 'OK') {
      throw new ProblemError('poll_exists', `poll ${poll.pollId} already exists`);
    }
    try {
      await this.write('CREATED', poll, now);
    } catch (err) {
      const current = await this.redis.get(claimKey);
      if (current === claim) await this.redis.del(claimKey);
      throw new ProblemError('unavailable', `the poll could not be stored: ${(err as Error).message}`, undefined, 2);
    }
    return poll;
  }

  async close(pollId: string, now: number): Promise<PollDefinition> {
    const entry = this.catalog.get(pollId);
    if (!entry) throw new ProblemError('poll_not_found', `no poll ${pollId}`);
    const key = `${this.redisPrefix}poll-closed:${pollId}`;
    // The close takes effect closeLeadMs from now: by then every instance's catalog has read it (milliseconds),
    // so no instance answers 202 for a vote received after it (such a vote is decided POLL_CLOSED).
    await this.redis.set(key, String(now + this.closeLeadMs), 'NX');
    const closedAt = Number(await this.redis.get(key));
    const poll = { ...entry.poll, closedAt };
    if (entry.poll.closedAt === closedAt) return entry.poll;
    try {
      await this.write('CLOSED', poll, now);
    } catch (err) {
      throw new ProblemError('unavailable', `the close could not be stored: ${(err as Error).message}`, undefined, 2);
    }
    return poll;
  }
}
