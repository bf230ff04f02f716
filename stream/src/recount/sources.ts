import { cqlTallyStore, liveTopics, type Results } from '@votestream/read-models';
import {
  type CqlClient,
  type CqlSecurity,
  createCqlClient,
  createKafka,
  type KafkaSecurity,
  type Logger,
  readTopicToEnd,
  topicNames,
} from '@votestream/runtime';
import { createAvroSerde, type PollEvent, type VoteDecision } from '@votestream/schemas';
import mqtt from 'mqtt';
import { Recounter, type RecountResult, type RecountRules, recountAgrees, totalsDiffer } from './recount.ts';

/** Where the recount reads from. Every read model is optional: the log and the decisions are not. */
export interface RecountSources {
  pollId: string;
  kafkaBrokers: string[];
  kafkaSecurity: KafkaSecurity;
  schemaRegistryUrl: string;
  topicPrefix: string;
  rules: RecountRules;
  /** The CQL tally table (poll_totals) to compare with; omitted: not compared. */
  cql?: {
    contactPoints: string[];
    localDataCenter: string;
    keyspace: string;
    security: CqlSecurity;
    client?: CqlClient;
  };
  /** Base URL of the vote API (ingest), whose GET /v1/polls/{pollId}/results is compared; omitted: not compared. */
  resultsUrl?: string;
  /** MQTT broker whose retained totals message is compared; omitted: not compared. */
  mqttUrl?: string;
  /** Longest each read may take (a topic to its end, the retained message, an HTTP call). */
  readTimeoutMs: number;
  logger: Logger;
}

/** One place the result of the poll can be read, and what it says. */
export interface SourceTally {
  source: 'recount' | 'decisions' | 'cql' | 'results-api' | 'mqtt';
  totals: Record<string, number> | null;
  final: boolean | null;
  version: number | null;
  /** Why the source could not be read (it then counts as a difference). */
  error?: string;
}

export interface RecountReport {
  pollId: string;
  recount: RecountResult;
  sources: SourceTally[];
  /** Sources whose totals differ from the recount's, with the options that differ. */
  disagreements: Array<{ source: SourceTally['source']; options: string[] }>;
  /** Read models that do not yet hold the final tally. */
  notFinal: Array<SourceTally['source']>;
  /** Records skipped because they do not decode (the consumers dead-letter them), per topic read. */
  undecodable: { polls: number; decisions: number; votes: number };
  agrees: boolean;
}

/** Reads the log and every configured read model and compares them with the recount. */
export async function runRecount(s: RecountSources): Promise<RecountReport> {
  const kafka = createKafka({
    clientId: 'votestream-recount',
    brokers: s.kafkaBrokers,
    security: s.kafkaSecurity,
    logger: s.logger,
  });
  const serde = await createAvroSerde({ registryUrl: s.schemaRegistryUrl });
  const topics = topicNames(s.topicPrefix);
  const read = { timeoutMs: s.readTimeoutMs, groupIdPrefix: 'votestream-recount' };
  // A record that does not decode is what the consumers dead-letter (no decision, never counted): skipped here
  // too, and counted in the report.
  const undecodable = { polls: 0, decisions: 0, votes: 0 };
  const decodeOrSkip = async <T>(topic: keyof typeof undecodable, decode: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await decode();
    } catch {
      undecodable[topic]++;
      return undefined;
    }
  };

  // The poll as the compacted polls topic holds it now: its latest event and when that was appended.
  const decodePoll = serde.decoder('PollEvent');
  let latest: { event: PollEvent; timestamp: number } | undefined;
  await readTopicToEnd(
    kafka,
    topics.polls,
    async (_p, m) => {
      if (!m.value) return;
      const event = await decodeOrSkip('polls', () => decodePoll(m.value as Buffer));
      if (event?.poll.pollId === s.pollId) latest = { event, timestamp: Number(m.timestamp) };
    },
    read,
  );

  // The stream's decisions of this poll (one per vote if exactly-once held).
  const decodeDecision = serde.decoder('VoteDecision');
  const decisions = new Map<string, VoteDecision[]>();
  await readTopicToEnd(
    kafka,
    topics.voteDecisions,
    async (_p, m) => {
      if (!m.value) return;
      const d = await decodeOrSkip('decisions', () => decodeDecision(m.value as Buffer));
      if (!d || d.vote.pollId !== s.pollId) return;
      const voteId = d.vote.voteId.toLowerCase();
      const list = decisions.get(voteId);
      if (list) list.push(d);
      else decisions.set(voteId, [d]);
    },
    read,
  );

  // The log, replayed by the dedupe stage's rules.
  const recounter = new Recounter({
    pollId: s.pollId,
    poll: latest?.event.poll,
    pollEventTimestamp: latest?.timestamp ?? 0,
    decisions,
    rules: s.rules,
  });
  const decodeVote = serde.decoder('VoteCast');
  await readTopicToEnd(
    kafka,
    topics.votes,
    async (partition, m) => {
      if (!m.value) return;
      const vote = await decodeOrSkip('votes', () => decodeVote(m.value as Buffer));
      if (vote) recounter.offer({ partition, offset: m.offset, timestamp: Number(m.timestamp), vote });
    },
    read,
  );
  const recount = recounter.result();

  const sources: SourceTally[] = [
    { source: 'recount', totals: recount.totals, final: null, version: null },
    { source: 'decisions', totals: recount.decisionTotals, final: null, version: null },
  ];
  const fromResults = (source: SourceTally['source'], r: Results | null): SourceTally =>
    r
      ? { source, totals: r.totals, final: r.final, version: r.version }
      : { source, totals: null, final: null, version: null, error: 'no tally for this poll' };
  const failed = (source: SourceTally['source'], err: unknown): SourceTally => ({
    source,
    totals: null,
    final: null,
    version: null,
    error: err instanceof Error ? err.message : String(err),
  });

  if (s.cql) {
    const client =
      s.cql.client ??
      createCqlClient({
        contactPoints: s.cql.contactPoints,
        localDataCenter: s.cql.localDataCenter,
        security: s.cql.security,
      });
    try {
      sources.push(fromResults('cql', await cqlTallyStore(client, s.cql.keyspace).read(s.pollId)));
    } catch (err) {
      sources.push(failed('cql', err));
    } finally {
      if (!s.cql.client) await client.shutdown();
    }
  }
  if (s.resultsUrl) {
    try {
      const res = await fetch(`${s.resultsUrl.replace(/\/$/, '')}/v1/polls/${encodeURIComponent(s.pollId)}/results`, {
        signal: AbortSignal.timeout(s.readTimeoutMs),
      });
      if (res.status !== 200) throw new Error(`GET results answered ${res.status}`);
      sources.push(fromResults('results-api', (await res.json()) as Results));
    } catch (err) {
      sources.push(failed('results-api', err));
    }
  }
  if (s.mqttUrl) {
    try {
      sources.push(fromResults('mqtt', await retainedTotals(s.mqttUrl, s.pollId, s.readTimeoutMs)));
    } catch (err) {
      sources.push(failed('mqtt', err));
    }
  }

  const disagreements: RecountReport['disagreements'] = [];
  for (const src of sources.slice(1)) {
    if (src.totals === null) disagreements.push({ source: src.source, options: ['(unreadable)'] });
    else {
      const options = totalsDiffer(recount.totals, src.totals);
      if (options.length > 0) disagreements.push({ source: src.source, options });
    }
  }
  const notFinal = sources.filter((x) => x.final === false).map((x) => x.source);
  return {
    pollId: s.pollId,
    recount,
    sources,
    disagreements,
    notFinal,
    undecodable,
    agrees: recountAgrees(recount) && disagreements.length === 0,
  };
}

/** The retained totals message of a poll (the latest the broker holds), or null when none arrives in time. */
async function retainedTotals(url: string, pollId: string, timeoutMs: number): Promise<Results | null> {
  const client = await mqtt.connectAsync(url, {
    clientId: `votestream-recount-${Math.random().toString(36).slice(2, 10)}`,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  });
  try {
    const got = new Promise<Results | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      client.on('message', (_topic, payload, packet) => {
        if (!packet.retain) return;
        clearTimeout(timer);
        resolve(JSON.parse(payload.toString()) as Results);
      });
    });
    await client.subscribeAsync(liveTopics.totals(pollId), { qos: 1 });
    return await got;
  } finally {
    await client.endAsync();
  }
}

/** The report as the CLI prints it: one line per option and source, then verdicts and what differs. */
export function formatReport(r: RecountReport): string {
  const lines: string[] = [];
  const { recount } = r;
  lines.push(`recount of poll ${r.pollId}: ${recount.votes} votes in the log`);
  const v = recount.verdicts;
  lines.push(
    `decisions: ${v.match} match, ${v.resent} resends of the counted vote (no decision), ${v['close-race']} close race, ${v.finalisation} finalisation (both explained), ` +
      `${v.differs} differ, ${v['no-decision']} without decision, ${v['many-decisions']} with more than one, ` +
      `${recount.orphanDecisions} without vote`,
  );
  const options = [...new Set(r.sources.flatMap((s) => Object.keys(s.totals ?? {})))].sort();
  const header = ['option', ...r.sources.map((s) => s.source)];
  const rows = options.map((o) => [o, ...r.sources.map((s) => (s.totals ? String(s.totals[o] ?? 0) : '-'))]);
  const total = (s: SourceTally) => (s.totals ? String(Object.values(s.totals).reduce((a, b) => a + b, 0)) : '-');
  rows.push(['total', ...r.sources.map(total)]);
  rows.push(['final', ...r.sources.map((s) => (s.final === null ? '' : s.final ? 'yes' : 'no'))]);
  rows.push(['version', ...r.sources.map((s) => (s.version === null ? '' : String(s.version)))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  lines.push(fmt(header), ...rows.map(fmt));
  for (const s of r.sources) if (s.error) lines.push(`${s.source}: ${s.error}`);
  for (const d of r.disagreements) lines.push(`DIFF ${d.source}: ${d.options.join(', ')}`);
  for (const d of recount.differences)
    lines.push(
      `DIFF vote ${d.voteId} (voter ${d.voterId}, partition ${d.partition} offset ${d.offset}): ${d.verdict}, ` +
        `recount ${JSON.stringify(d.recount)}, stream ${JSON.stringify(d.stream)}`,
    );
  const u = r.undecodable;
  if (u.votes + u.decisions + u.polls > 0)
    lines.push(
      `skipped as undecodable (dead-lettered by the consumers): ${u.votes} votes, ${u.decisions} decisions, ${u.polls} poll events`,
    );
  if (r.notFinal.length > 0) lines.push(`not final yet: ${r.notFinal.join(', ')}`);
  lines.push(r.agrees ? 'OK: the recount and every source agree' : 'FAILED: the recount found differences');
  return lines.join('\n');
}
