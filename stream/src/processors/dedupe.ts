import { invariant, type Logger, sharedMetric, voteKey } from '@votestream/runtime';
import type { AvroSerde, TallyUpdate, VoteCast, VoteDecision } from '@votestream/schemas';
import type { KafkaMessage } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { genesisOf, leafOf, linkOf } from '../audit/chain.ts';
import { closeTimeOf, type PollCatalog } from '../catalog.ts';
import type { StreamConfig } from '../config.ts';
import type { RecordCollector } from '../runtime/collector.ts';
import { ChangelogCorruptError } from '../runtime/errors.ts';
import { type Clock, systemClock, type TaskProcessor } from '../runtime/processor.ts';
import type { ChangelogRecord } from '../runtime/restore.ts';
import { type Fingerprint, fingerprintOf, fingerprintOfBytes, isVoteId, VoterTable } from '../state/voter-table.ts';
import { dedupeStore, type PartialTallyRecord, partialTallyStore } from './changelogs.ts';
import { nextVersion, sumOf, toWindowCounts, type WindowState, windowStartOf } from './tally-state.ts';
import { eligibilityOf } from './vote-rules.ts';

export interface DedupeTopics {
  votes: string;
  voteDecisions: string;
  tallyPartials: string;
  /** Changelog of the tally store (poll partials, windows, watermark) and of the runtime's task position. */
  tallyChangelog: string;
  /** Changelog of the dedupe store: key pollId/voterId, value the voteId of the first vote. */
  dedupeChangelog: string;
}

/** The partial tally of one poll in one task (source = the votes partition). */
interface PartialTally {
  version: number;
  totals: Record<string, number>;
  late: number;
  final: boolean;
  windows: Map<number, WindowState>;
  /** The audit chain of this poll's decisions in this task (stream/src/audit/chain.ts): links so far, last link. */
  auditCount: number;
  auditHead: string;
  dirty: boolean;
  dirtyWindows: Set<number>;
  evictedWindows: Set<number>;
}

export interface DedupeContext {
  config: StreamConfig;
  topics: DedupeTopics;
  serde: AvroSerde;
  /** The poll catalog as the processor reads it (PollCatalog; a fake in unit tests). */
  catalog: Pick<PollCatalog, 'get' | 'all' | 'catchUp'>;
  logger: Logger;
  /** Processing time (decidedAt); default the wall clock. */
  clock?: Clock;
  registry: Registry;
}

function decisionsCounter(registry: Registry): Counter {
  return sharedMetric(
    registry,
    'stream_vote_decisions_total',
    () =>
      new Counter({
        name: 'stream_vote_decisions_total',
        help: 'Vote decisions committed by the dedupe stage, by outcome (COUNTED, REJECTED; RESENT: the counted vote again, no decision) and reason',
        labelNames: ['outcome', 'reason', 'late'],
        registers: [registry],
      }),
  );
}

/**
 * Stage 1 (dedupe) of one votes partition: the first vote of a voter in a poll counts, every vote gets exactly
 * one VoteDecision, and the task keeps absolute per-poll and per-window counts that it emits as TallyUpdate
 * partials (source = partition). Event time is the vote's receivedAt; the task's watermark is the highest event
 * time seen (or wall clock minus idleTimeoutMs when idle); a window [s, s + windowMs) closes when the watermark
 * passes its end plus grace; a vote for a closed window is still counted, and marked late.
 */
export class DedupeProcessor implements TaskProcessor {
  readonly changelogTopics: readonly string[];
  readonly positionChangelog: string;
  private readonly voters = new Map<string, VoterTable>();
  private readonly tallies = new Map<string, PartialTally>();
  private watermark = 0;
  private watermarkDirty = false;
  private readonly fp: Fingerprint = { hi: 0, lo: 0 };
  /** While restoring: the pollId (bytes) of the last dedupe changelog record and its table. */
  private restoring: { pollId: Buffer; table: VoterTable } | undefined;
  private readonly decodeVote: (buf: Buffer) => Promise<VoteCast>;
  private readonly encodeDecision: (v: VoteDecision) => Buffer;
  private readonly encodeTally: (v: TallyUpdate) => Buffer;
  private readonly decisions: Counter;
  private readonly decidedOnTime = new Map<string, Counter.Internal>();
  private readonly decidedLate = new Map<string, Counter.Internal>();
  private readonly clock: Clock;

  constructor(
    private readonly partition: number,
    private readonly ctx: DedupeContext,
  ) {
    this.changelogTopics = [ctx.topics.tallyChangelog, ctx.topics.dedupeChangelog];
    this.positionChangelog = ctx.topics.tallyChangelog;
    this.clock = ctx.clock ?? systemClock;
    this.decodeVote = ctx.serde.decoder('VoteCast');
    this.encodeDecision = ctx.serde.encoder('VoteDecision', { validate: false });
    this.encodeTally = ctx.serde.encoder('TallyUpdate', { validate: false });
    this.decisions = decisionsCounter(ctx.registry);
  }

  restore({ topic, key, value }: ChangelogRecord): void {
    if (topic === this.ctx.topics.dedupeChangelog) {
      if (!value) return;
      // From the bytes (nearly every record of a restore is one of these): the voterId is hashed and the voteId
      // parsed where they are; a pollId is decoded only when it differs from the previous record's.
      const slash = dedupeStore.keySlashOf(key);
      let r = this.restoring;
      if (r === undefined || r.pollId.compare(key, 0, slash) !== 0) {
        r = { pollId: Buffer.from(key.subarray(0, slash)), table: this.table(key.toString('utf8', 0, slash)) };
        this.restoring = r;
      }
      try {
        r.table.insert(fingerprintOfBytes(key, slash + 1, key.length, this.fp), value);
      } catch (err) {
        // The table refused the value (its invariant): a value that is no voteId is a corrupt record (fatal), named
        // as such. Checked only here, so a restore parses each voteId once.
        if (!isVoteId(value))
          throw new ChangelogCorruptError(
            `dedupe store: value must be a voteId (UUID), got ${JSON.stringify(value.toString('utf8', 0, 64))}`,
          );
        throw err;
      }
      return;
    }
    invariant(topic === this.ctx.topics.tallyChangelog, `a changelog of this processor, got ${topic}`);
    const k = partialTallyStore.decodeKey(key.toString());
    if (k.kind === 'watermark') {
      if (value) this.watermark = partialTallyStore.watermark.decode(value);
    } else if (k.kind === 'tally') {
      if (!value) {
        this.tallies.delete(k.pollId);
        return;
      }
      const r = partialTallyStore.tally.decode(value);
      const t = this.tally(k.pollId);
      t.version = r.version;
      t.totals = r.totals;
      t.late = r.late;
      t.final = r.final;
      t.auditCount = r.auditCount ?? 0;
      t.auditHead = r.auditHead ?? genesisOf(k.pollId, this.partition);
    } else {
      const t = this.tally(k.pollId);
      if (value) t.windows.set(k.windowStart, partialTallyStore.window.decode(value));
      else t.windows.delete(k.windowStart);
    }
  }

  /** Voters remembered by the dedupe store, over all polls (the benchmark checks a restore with it). */
  rememberedVoters(): number {
    let n = 0;
    for (const table of this.voters.values()) n += table.size;
    return n;
  }

  restored(): void {
    this.restoring = undefined;
    for (const [pollId, t] of this.tallies) {
      t.dirty = false;
      t.dirtyWindows.clear();
      if (t.final) this.voters.delete(pollId); // a final poll rejects every further vote as POLL_CLOSED
    }
  }

  async process(messages: readonly KafkaMessage[], out: RecordCollector): Promise<void> {
    const { config, topics, catalog } = this.ctx;
    const now = this.clock();
    let caughtUp = false;
    for (const m of messages) {
      let vote: VoteCast | undefined;
      let failure: unknown = null; // null with no vote: the record has no value (a tombstone on votes)
      if (m.value) {
        try {
          vote = await this.decodeVote(m.value);
        } catch (err) {
          failure = err;
        }
      }
      if (vote === undefined) {
        // Poison (undecodable, unknown schema, no value): dead-lettered in this transaction, no decision.
        if (out.deadLetter(m, failure)) continue;
        throw failure ?? new Error(`votes record at offset ${m.offset} has no value`);
      }
      let poll = catalog.get(vote.pollId);
      if (!poll && !caughtUp) {
        await catalog.catchUp();
        caughtUp = true;
        poll = catalog.get(vote.pollId);
      }
      const eventTime = vote.receivedAt;
      const windowStart = windowStartOf(eventTime, config.windowMs);
      const late = windowStart + config.windowMs + config.graceMs <= this.watermark;
      let reason = eligibilityOf(poll, vote.optionId, eventTime, this.tallies.get(vote.pollId)?.final === true);
      let countedVoteId: string | null = null;
      let resent = false;
      if (reason === null) {
        const table = this.table(vote.pollId);
        const fp = fingerprintOf(vote.voterId, this.fp);
        const slot = table.find(fp);
        if (slot >= 0) {
          countedVoteId = table.voteIdAt(slot);
          // The same voteId again is the counted vote resent (ingest derives voteIds from the Idempotency-Key
          // and produces it again after a crash or a failed produce): no new decision, nothing counted. A
          // DUPLICATE decision would overwrite the counted vote's receipt (same voteId) with "rejected".
          if (countedVoteId === vote.voteId.toLowerCase()) resent = true;
          else reason = 'DUPLICATE';
        } else {
          table.insert(fp, vote.voteId);
          out.send(
            topics.dedupeChangelog,
            dedupeStore.key(vote.pollId, vote.voterId),
            dedupeStore.value.encode(vote.voteId),
            this.partition,
          );
          this.count(vote.pollId, vote.optionId, windowStart, late);
        }
      }
      if (eventTime > this.watermark) {
        this.watermark = eventTime;
        this.watermarkDirty = true;
      }
      if (resent) {
        this.decided('RESENT', '', late).inc();
        continue;
      }
      const decision: VoteDecision = {
        vote,
        outcome: reason === null ? 'COUNTED' : 'REJECTED',
        reason,
        countedVoteId,
        late,
        windowStart,
        decidedAt: now,
      };
      // The audit chain: every decision of a known poll, in commit order, until this task finalised the poll.
      if (poll) {
        const t = this.tally(vote.pollId);
        if (!t.final) {
          t.auditHead = linkOf(t.auditHead, leafOf(decision));
          t.auditCount++;
          t.dirty = true;
        }
      }
      out.send(
        topics.voteDecisions,
        m.key ?? voteKey(vote.pollId, vote.voterId), // the vote's key bytes as they are: the same key
        this.encodeDecision(decision),
      );
      this.decided(decision.outcome, reason ?? '', late).inc();
    }
  }

  /** The decisions counter's child for these labels, looked up once per label set (not per vote). */
  private decided(outcome: 'COUNTED' | 'REJECTED' | 'RESENT', reason: string, late: boolean): Counter.Internal {
    const children = late ? this.decidedLate : this.decidedOnTime;
    const key = reason === '' ? outcome : reason; // a reason is only ever given with REJECTED
    let child = children.get(key);
    if (child === undefined) {
      child = this.decisions.labels({ outcome, reason, late: String(late) });
      children.set(key, child);
    }
    return child;
  }

  private table(pollId: string): VoterTable {
    let t = this.voters.get(pollId);
    if (!t) {
      t = new VoterTable();
      this.voters.set(pollId, t);
    }
    return t;
  }

  private tally(pollId: string): PartialTally {
    let t = this.tallies.get(pollId);
    if (!t) {
      t = {
        version: 0,
        totals: {},
        late: 0,
        final: false,
        windows: new Map(),
        auditCount: 0,
        auditHead: genesisOf(pollId, this.partition),
        dirty: false,
        dirtyWindows: new Set(),
        evictedWindows: new Set(),
      };
      this.tallies.set(pollId, t);
    }
    return t;
  }

  private count(pollId: string, optionId: string, windowStart: number, late: boolean): void {
    const { config } = this.ctx;
    const t = this.tally(pollId);
    t.totals[optionId] = (t.totals[optionId] ?? 0) + 1;
    if (late) t.late++;
    t.dirty = true;
    // A window older than the retention is no longer in the store: the vote counts in the totals only.
    if (windowStart + config.windowMs + config.windowRetentionMs <= this.watermark) return;
    let w = t.windows.get(windowStart);
    if (!w) {
      w = { counts: {}, late: 0 };
      t.windows.set(windowStart, w);
    }
    w.counts[optionId] = (w.counts[optionId] ?? 0) + 1;
    if (late) w.late++;
    t.dirtyWindows.add(windowStart);
  }

  flush(nowMs: number, out: RecordCollector): void {
    const { topics, config } = this.ctx;
    for (const [pollId, t] of this.tallies) {
      if (!t.dirty && t.dirtyWindows.size === 0 && t.evictedWindows.size === 0) continue;
      t.version = nextVersion(t.version, nowMs);
      const windows = [];
      for (const start of t.dirtyWindows) {
        const w = t.windows.get(start);
        if (!w) continue;
        windows.push(toWindowCounts(start, config.windowMs, w));
        out.send(
          topics.tallyChangelog,
          partialTallyStore.windowKey(pollId, start),
          partialTallyStore.window.encode(w),
          this.partition,
        );
      }
      for (const start of t.evictedWindows)
        out.send(topics.tallyChangelog, partialTallyStore.windowKey(pollId, start), null, this.partition);
      const record: PartialTallyRecord = {
        version: t.version,
        totals: t.totals,
        late: t.late,
        final: t.final,
        auditCount: t.auditCount,
        auditHead: t.auditHead,
      };
      out.send(
        topics.tallyChangelog,
        partialTallyStore.tallyKey(pollId),
        partialTallyStore.tally.encode(record),
        this.partition,
      );
      if (t.dirty || t.dirtyWindows.size > 0) {
        const partial: TallyUpdate = {
          pollId,
          source: this.partition,
          version: t.version,
          totals: { ...t.totals },
          total: sumOf(t.totals),
          lateVotes: t.late,
          windows,
          watermark: Math.max(0, this.watermark - config.graceMs),
          asOf: nowMs,
          final: t.final,
          audit: {
            heads: [{ source: this.partition, count: t.auditCount, head: t.auditHead }],
            signature: null,
            keyId: null,
          },
        };
        out.send(topics.tallyPartials, pollId, this.encodeTally(partial));
      }
      t.dirty = false;
      t.dirtyWindows.clear();
      t.evictedWindows.clear();
    }
    if (this.watermarkDirty) {
      out.send(
        topics.tallyChangelog,
        partialTallyStore.watermarkKey,
        partialTallyStore.watermark.encode(this.watermark),
        this.partition,
      );
      this.watermarkDirty = false;
    }
  }

  punctuate(nowMs: number, idle: boolean, out: RecordCollector): void {
    const { config, catalog } = this.ctx;
    if (idle && nowMs - config.idleTimeoutMs > this.watermark) {
      this.watermark = nowMs - config.idleTimeoutMs;
      this.watermarkDirty = true;
    }
    // Final partials: once the watermark passed a poll's close plus grace, its count here cannot change.
    for (const poll of catalog.all()) {
      const closeAt = closeTimeOf(poll);
      if (closeAt === null || this.watermark < closeAt + config.graceMs) continue;
      const t = this.tally(poll.pollId);
      if (t.final) continue;
      t.final = true;
      t.dirty = true;
      this.voters.delete(poll.pollId);
    }
    // Evict windows past their retention from the store (tombstones in the changelog).
    for (const t of this.tallies.values()) {
      for (const start of t.windows.keys()) {
        if (start + config.windowMs + config.windowRetentionMs <= this.watermark) {
          t.windows.delete(start);
          t.dirtyWindows.delete(start);
          t.evictedWindows.add(start);
        }
      }
    }
    this.flush(nowMs, out);
  }
}
