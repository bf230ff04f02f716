import type { KeyObject } from 'node:crypto';
import { invariant, type Logger } from '@votestream/runtime';
import type { AvroSerde, TallyUpdate } from '@votestream/schemas';
import type { KafkaMessage } from 'kafkajs';
import { checkpointBytes, genesisOf, signCheckpoint } from '../audit/chain.ts';
import type { StreamConfig } from '../config.ts';
import type { RecordCollector } from '../runtime/collector.ts';
import type { TaskProcessor } from '../runtime/processor.ts';
import type { ChangelogRecord } from '../runtime/restore.ts';
import { type GlobalPollRecord, globalTallyStore } from './changelogs.ts';
import { nextVersion, sumOf, type WindowState } from './tally-state.ts';

export interface GlobalTallyTopics {
  tallyPartials: string;
  tallies: string;
  /** Changelog of the global tally store (key p/<pollId> and w/<pollId>/<windowStart>). */
  changelog: string;
}

interface GlobalPoll extends GlobalPollRecord {
  /** windowStart -> source -> that source's absolute counts in the window. */
  windows: Map<number, Record<string, WindowState>>;
  dirty: boolean;
  dirtyWindows: Set<number>;
  evictedWindows: Set<number>;
}

export interface GlobalTallyContext {
  config: StreamConfig;
  topics: GlobalTallyTopics;
  serde: AvroSerde;
  /** Partitions of the votes topic: a poll's global tally is final once every one of them sent a final partial. */
  sources: number;
  logger: Logger;
  /** Signs the audit checkpoint of final tallies; absent: final tallies carry the heads unsigned. */
  signer?: { key: KeyObject; keyId: string };
}

/**
 * Stage 2 (global tally) of one tally-partials partition (keyed by pollId, so one task sees every partial of a
 * poll): keeps the latest partial per (poll, source), drops any partial not newer than the one it has, and emits
 * the sum as the global TallyUpdate (source -1) with a version that strictly increases per poll.
 */
export class GlobalTallyProcessor implements TaskProcessor {
  readonly changelogTopics: readonly string[];
  readonly positionChangelog: string;
  private readonly polls = new Map<string, GlobalPoll>();
  private readonly decode: (buf: Buffer) => Promise<TallyUpdate>;
  private readonly encode: (v: TallyUpdate) => Buffer;

  constructor(
    private readonly partition: number,
    private readonly ctx: GlobalTallyContext,
  ) {
    this.changelogTopics = [ctx.topics.changelog];
    this.positionChangelog = ctx.topics.changelog;
    this.decode = ctx.serde.decoder('TallyUpdate');
    this.encode = ctx.serde.encoder('TallyUpdate', { validate: false });
  }

  private poll(pollId: string): GlobalPoll {
    let p = this.polls.get(pollId);
    if (!p) {
      p = {
        version: 0,
        finalEmitted: false,
        sources: {},
        windows: new Map(),
        dirty: false,
        dirtyWindows: new Set(),
        evictedWindows: new Set(),
      };
      this.polls.set(pollId, p);
    }
    return p;
  }

  restore({ key, value }: ChangelogRecord): void {
    const k = globalTallyStore.decodeKey(key.toString());
    const p = this.poll(k.pollId);
    if (k.kind === 'poll') {
      if (!value) return;
      const s = globalTallyStore.poll.decode(value);
      p.version = s.version;
      p.finalEmitted = s.finalEmitted;
      p.sources = s.sources;
    } else if (value) p.windows.set(k.windowStart, globalTallyStore.window.decode(value));
    else p.windows.delete(k.windowStart);
  }

  restored(): void {}

  async process(messages: readonly KafkaMessage[], out: RecordCollector): Promise<void> {
    for (const m of messages) {
      let u: TallyUpdate | undefined;
      let failure: unknown = null; // null with no update: the record has no value
      if (m.value) {
        try {
          u = await this.decode(m.value);
        } catch (err) {
          failure = err;
        }
      }
      if (u === undefined) {
        if (out.deadLetter(m, failure)) continue; // poison: dead-lettered in this transaction
        throw failure ?? new Error(`tally-partials record at offset ${m.offset} has no value`);
      }
      invariant(u.source >= 0, `a partial names its source partition, got ${u.source}`);
      const p = this.poll(u.pollId);
      const key = String(u.source);
      const prev = p.sources[key];
      if (prev && u.version <= prev.version) continue; // replayed or older partial: already in the sum
      if (prev) {
        for (const [option, n] of Object.entries(prev.totals)) {
          invariant(
            (u.totals[option] ?? 0) >= n,
            `partial of ${u.pollId} from ${u.source} went backwards for ${option}`,
          );
        }
        invariant(!prev.final || u.final, `partial of ${u.pollId} from ${u.source} changed after it was final`);
      }
      p.sources[key] = {
        version: u.version,
        totals: u.totals,
        late: u.lateVotes,
        watermark: u.watermark,
        final: u.final,
        ...(u.audit?.heads[0] ? { audit: { count: u.audit.heads[0].count, head: u.audit.heads[0].head } } : {}),
      };
      for (const w of u.windows) {
        let bySource = p.windows.get(w.windowStart);
        if (!bySource) {
          bySource = {};
          p.windows.set(w.windowStart, bySource);
        }
        bySource[key] = { counts: w.counts, late: w.late };
        p.dirtyWindows.add(w.windowStart);
      }
      p.dirty = true;
    }
  }

  flush(nowMs: number, out: RecordCollector): void {
    const { config, topics, sources } = this.ctx;
    for (const [pollId, p] of this.polls) {
      if (!p.dirty && p.evictedWindows.size === 0) continue;
      for (const start of p.evictedWindows)
        out.send(topics.changelog, globalTallyStore.windowKey(pollId, start), null, this.partition);
      p.evictedWindows.clear();
      if (!p.dirty) continue;
      invariant(!p.finalEmitted, `global tally of ${pollId} changed after it was final`);
      const totals: Record<string, number> = {};
      let late = 0;
      let watermark = Number.MAX_SAFE_INTEGER;
      let finals = 0;
      const list = Object.values(p.sources);
      for (const s of list) {
        for (const [option, n] of Object.entries(s.totals)) totals[option] = (totals[option] ?? 0) + n;
        late += s.late;
        watermark = Math.min(watermark, s.watermark);
        if (s.final) finals++;
      }
      const windows = [];
      for (const start of p.dirtyWindows) {
        const bySource = p.windows.get(start);
        if (!bySource) continue;
        const counts: Record<string, number> = {};
        let wLate = 0;
        for (const w of Object.values(bySource)) {
          for (const [option, n] of Object.entries(w.counts)) counts[option] = (counts[option] ?? 0) + n;
          wLate += w.late;
        }
        windows.push({ windowStart: start, windowEnd: start + config.windowMs, counts, late: wLate });
        out.send(
          topics.changelog,
          globalTallyStore.windowKey(pollId, start),
          globalTallyStore.window.encode(bySource),
          this.partition,
        );
      }
      p.version = nextVersion(p.version, nowMs);
      p.finalEmitted = finals >= sources;
      const state: GlobalPollRecord = { version: p.version, finalEmitted: p.finalEmitted, sources: p.sources };
      out.send(topics.changelog, globalTallyStore.pollKey(pollId), globalTallyStore.poll.encode(state), this.partition);
      const heads = Object.entries(p.sources)
        .map(([source, s]) => ({
          source: Number(source),
          count: s.audit?.count ?? 0,
          head: s.audit?.head ?? genesisOf(pollId, Number(source)),
        }))
        .sort((a, b) => a.source - b.source);
      const signer = p.finalEmitted ? this.ctx.signer : undefined;
      const update: TallyUpdate = {
        pollId,
        source: -1,
        version: p.version,
        totals,
        total: sumOf(totals),
        lateVotes: late,
        windows,
        watermark: list.length > 0 ? watermark : 0,
        asOf: nowMs,
        final: p.finalEmitted,
        audit: {
          heads,
          signature: signer ? signCheckpoint(signer.key, checkpointBytes(pollId, p.version, totals, heads)) : null,
          keyId: signer ? signer.keyId : null,
        },
      };
      out.send(topics.tallies, pollId, this.encode(update));
      p.dirty = false;
      p.dirtyWindows.clear();
    }
  }

  punctuate(nowMs: number, _idle: boolean, out: RecordCollector): void {
    const { config } = this.ctx;
    for (const p of this.polls.values()) {
      let watermark = Number.MAX_SAFE_INTEGER;
      for (const s of Object.values(p.sources)) watermark = Math.min(watermark, s.watermark);
      for (const start of p.windows.keys()) {
        if (start + config.windowMs + config.windowRetentionMs <= watermark) {
          p.windows.delete(start);
          p.dirtyWindows.delete(start);
          p.evictedWindows.add(start);
        }
      }
    }
    this.flush(nowMs, out);
  }
}
