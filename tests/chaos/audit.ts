// The audit after a faulty run: closes the poll, waits until the final tally is in the results API, the CQL
// table and on MQTT and the ballot receipts agree with it, then compares what each voter was told with what
// was counted. Everything is read from the real stores; nothing is inferred from logs.
import { mintToken } from '@votestream/ingest';
import { voterKey } from '@votestream/read-models';
import type { CqlClient } from '@votestream/runtime';
import mqtt from 'mqtt';
import { pseudonymOf } from '../../stream/src/analytics/pseudonymise.ts';
import { type Decision, type LoggedVote, readAnalytics, readDecisions, readVotes } from './decisions.ts';
import type { VoterRecord } from './voters.ts';

export interface Totals {
  totals: Record<string, number>;
  total: number;
  final: boolean;
  version: number;
}

export interface AuditReport {
  accepted: number;
  refused: number;
  unknown: number;
  /** Voters told 202 whose vote is not counted at all. */
  lostAcknowledged: number;
  /** Votes counted beyond one per voter: a voter with two COUNTED decisions, or totals above the counted voters. */
  doubleCounts: number;
  /** 202s (distinct voteIds) that name a vote other than the voter's counted one. */
  wrongAccepted: number;
  /** Voters refused with a 4xx (never accepted) whose vote is counted anyway. */
  refusedCounted: number;
  /** results API = CQL = MQTT = the stream's COUNTED decisions, per option, and all final. */
  agree: boolean;
  /** Decisions without the matching ballot receipt in CQL (missing, or another outcome). */
  receiptsMissing: number;
  /** Records in vote-decisions that repeat a decision already there (same vote, same outcome). */
  duplicateDecisionRecords: number;
  /**
   * Decision records without their one analytics record, plus analytics records without their decision record (the
   * analytics stage writes exactly one per committed decision record: same pseudonym key, option, outcome).
   */
  analyticsMismatches: number;
  analyticsRecords: number;
  /** Sampled voters whose `votes/me` does not name their counted vote. */
  receiptMismatches: number;
  receiptsChecked: number;
  /** From the close of the poll until the final tally agreed everywhere (or the deadline). */
  convergeMs: number;
  results: Totals | undefined;
  cql: Totals | undefined;
  mqtt: Totals | undefined;
  countedByOption: Record<string, number>;
  decisions: number;
  /** A few examples of each problem, for the report. */
  examples: string[];
}

export async function audit(o: {
  apiUrl: () => string;
  pollId: string;
  options: string[];
  keyspace: string;
  cql: CqlClient;
  mqttUrl: string;
  privateKeyPem: string;
  voters: VoterRecord[];
  brokers: string[];
  prefix: string;
  registryUrl: string;
  convergeTimeoutMs: number;
  receiptSample: number;
}): Promise<AuditReport> {
  const admin = await mintToken({ privateKeyPem: o.privateKeyPem, sub: 'chaos-admin', admin: true });
  const closedAt = performance.now();
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${o.apiUrl()}/v1/polls/${o.pollId}/close`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    }).catch(() => undefined);
    if (res?.status === 200) break;
    if (attempt >= 30) throw new Error(`could not close poll ${o.pollId}: ${res?.status}`);
    await new Promise((r) => setTimeout(r, 1000));
  }

  const readResults = async (): Promise<Totals | undefined> => {
    const res = await fetch(`${o.apiUrl()}/v1/polls/${o.pollId}/results`).catch(() => undefined);
    return res?.ok ? ((await res.json()) as Totals) : undefined;
  };
  const readCql = async (): Promise<Totals | undefined> => {
    const row = (
      await o.cql.execute(
        `SELECT totals, total, final, version FROM ${o.keyspace}.poll_totals WHERE poll_id = ?`,
        [o.pollId],
        { prepare: true },
      )
    ).first();
    if (!row) return undefined;
    const totals = Object.fromEntries(
      Object.entries((row.get('totals') ?? {}) as Record<string, unknown>).map(([k, v]) => [k, Number(v)]),
    );
    return {
      totals,
      total: Number(row.get('total')),
      final: Boolean(row.get('final')),
      version: Number(row.get('version')),
    };
  };
  const readMqtt = async (): Promise<Totals | undefined> => {
    // A screen that connects now: the retained message is the latest totals.
    const client = await mqtt.connectAsync(o.mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      const got = new Promise<Totals | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 3000);
        client.on('message', (_t, payload) => {
          clearTimeout(timer);
          resolve(payload.length ? (JSON.parse(payload.toString()) as Totals) : undefined);
        });
      });
      await client.subscribeAsync(`votestream/polls/${o.pollId}/totals`, { qos: 1 });
      return await got;
    } finally {
      await client.endAsync();
    }
  };
  interface Receipt {
    voteId: string;
    optionId: string;
    outcome: string;
  }
  const readReceipts = async (): Promise<Map<string, Receipt[]>> => {
    const byVoter = new Map<string, Receipt[]>();
    // The keyspace is this run's own: a full scan reads only this run's receipts.
    let pageState: string | undefined;
    do {
      const page = await o.cql.execute(
        `SELECT poll_id, voter_key, vote_id, option_id, outcome FROM ${o.keyspace}.ballot_receipts`,
        [],
        { prepare: true, fetchSize: 2000, ...(pageState ? { pageState } : {}) },
      );
      for (const row of page.rows) {
        if (row.get('poll_id') !== o.pollId) continue;
        const key = String(row.get('voter_key'));
        const list = byVoter.get(key) ?? [];
        list.push({
          voteId: String(row.get('vote_id')),
          optionId: String(row.get('option_id')),
          outcome: String(row.get('outcome')),
        });
        byVoter.set(key, list);
      }
      pageState = page.pageState ?? undefined;
    } while (pageState);
    return byVoter;
  };
  const same = (a: Totals | undefined, b: Totals | undefined) =>
    a !== undefined &&
    b !== undefined &&
    a.total === b.total &&
    a.final === b.final &&
    o.options.every((k) => (a.totals[k] ?? 0) === (b.totals[k] ?? 0));

  let results: Totals | undefined;
  let cqlTotals: Totals | undefined;
  let mqttTotals: Totals | undefined;
  let receipts = new Map<string, Receipt[]>();
  let decisions: Decision[] | undefined;
  let duplicateDecisionRecords = 0;
  let decisionRecords: Decision[] = [];
  let countedByOption: Record<string, number> = {};
  let agree = false;
  let receiptsMissing = 0;
  const missingReceipts = (): number => {
    let n = 0;
    for (const d of decisions ?? []) {
      const r = receipts.get(voterKey(d.voterId))?.find((x) => x.voteId === d.voteId);
      if (r?.outcome !== (d.counted ? 'counted' : 'rejected')) n++;
    }
    return n;
  };
  const deadline = performance.now() + o.convergeTimeoutMs;
  for (let round = 0; ; round++) {
    results = await readResults();
    if (results?.final) {
      // The decisions are read when the final tally is out (they were committed before it), and again every
      // tenth round in case they were not.
      if (decisions === undefined || round % 10 === 0) {
        const all = await readDecisions({
          brokers: o.brokers,
          prefix: o.prefix,
          pollId: o.pollId,
          registryUrl: o.registryUrl,
          timeoutMs: 60_000,
        });
        // The same decision of the same vote twice in the log is a duplicate record, not a second count (the
        // tallies count from the state store, and receipts are upserts by voteId); counted apart below.
        const seen = new Map<string, Decision>();
        for (const d of all) seen.set(`${d.voteId}/${d.counted}`, d);
        duplicateDecisionRecords = all.length - seen.size;
        decisionRecords = all;
        decisions = [...seen.values()];
      }
      [cqlTotals, mqttTotals, receipts] = await Promise.all([readCql(), readMqtt(), readReceipts()]);
      countedByOption = Object.fromEntries(o.options.map((k) => [k, 0]));
      for (const d of decisions) if (d.counted) countedByOption[d.optionId] = (countedByOption[d.optionId] ?? 0) + 1;
      const fromDecisions: Totals = {
        totals: countedByOption,
        total: Object.values(countedByOption).reduce((a, b) => a + b, 0),
        final: true,
        version: 0,
      };
      agree = same(results, cqlTotals) && same(results, mqttTotals) && same(results, fromDecisions);
      receiptsMissing = missingReceipts();
      if (agree && receiptsMissing === 0) break;
    }
    if (performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const convergeMs = performance.now() - closedAt;

  const examples: string[] = [];
  const example = (s: string) => {
    if (examples.length < 60) examples.push(s);
  };
  let lostAcknowledged = 0;
  let doubleCounts = 0;
  let wrongAccepted = 0;
  let refusedCounted = 0;
  let countedVoters = 0;
  const countedOf = new Map<string, Decision[]>();
  for (const d of decisions ?? []) if (d.counted) countedOf.set(d.voterId, [...(countedOf.get(d.voterId) ?? []), d]);
  const countedVoteOf = new Map<string, Decision>();
  for (const v of o.voters) {
    const counted = countedOf.get(v.voterId) ?? [];
    if (counted.length > 0) countedVoters++;
    if (counted.length > 1) {
      doubleCounts += counted.length - 1;
      example(`${v.voterId} counted ${counted.length} times`);
    }
    const c = counted[0];
    if (c) countedVoteOf.set(v.voterId, c);
    if (v.accepted.size > 0 && !c) {
      lostAcknowledged++;
      example(
        `${v.voterId} was told 202 (${[...v.accepted.keys()].join(',')}) and is not counted; answers ${v.answers.join(' / ')}`,
      );
    }
    if (c)
      for (const voteId of v.accepted.keys())
        if (voteId !== c.voteId) {
          wrongAccepted++;
          example(`${v.voterId} was told 202 ${voteId}; counted ${c.voteId}; answers ${v.answers.join(' / ')}`);
        }
    if (v.first === 'refused' && v.accepted.size === 0 && c) {
      refusedCounted++;
      example(`${v.voterId} was refused (${v.answers.join(' / ')}) and is counted`);
    }
  }
  // Where each lost vote ended: the voter's records in `votes` (did ingest's append land?) and every decision of the
  // voter (was it decided, and how?). Printed with the examples, so a failing run explains itself.
  const lostVoters = new Set(
    o.voters.filter((v) => v.accepted.size > 0 && !countedOf.has(v.voterId)).map((v) => v.voterId),
  );
  if (lostVoters.size > 0 && lostVoters.size <= 20) {
    const logged = await readVotes({
      brokers: o.brokers,
      prefix: o.prefix,
      pollId: o.pollId,
      registryUrl: o.registryUrl,
      timeoutMs: 60_000,
    }).catch((err: unknown) => {
      example(`reading the votes topic failed: ${(err as Error).message}`);
      return [] as LoggedVote[];
    });
    const iso = (ms: number) => new Date(ms).toISOString().slice(11, 23);
    const show = (x: LoggedVote) =>
      `${x.voteId.slice(0, 8)} ${x.voterId.replace(/^.*-v/, 'v')} at ${x.at} received ${iso(x.receivedAt)} appended ${iso(x.timestamp)}`;
    // Votes appended more than once (a produce retried after it had landed): where, and when.
    const byVote = new Map<string, LoggedVote[]>();
    for (const x of logged) byVote.set(x.voteId, [...(byVote.get(x.voteId) ?? []), x]);
    for (const copies of byVote.values())
      if (copies.length > 1) example(`  appended ${copies.length} times: ${copies.map(show).join(' | ')}`);
    const epochOf = (perfMs: number) => Date.now() - performance.now() + perfMs;
    for (const voter of o.voters.filter((v) => lostVoters.has(v.voterId))) {
      const voterId = voter.voterId;
      const votes = logged.filter((x) => x.voterId === voterId);
      const decided = (decisions ?? []).filter((d) => d.voterId === voterId);
      example(
        `  ${voterId} started ${iso(epochOf(voter.startedAt))}; in votes: ${votes.map(show).join('; ') || 'none'}`,
      );
      example(
        `  ${voterId} decisions: ${decided.map((d) => `${d.voteId.slice(0, 8)} ${d.counted ? 'COUNTED' : `REJECTED ${d.reason}`} at ${d.at} decided ${iso(d.decidedAt)}`).join('; ') || 'none'}`,
      );
      // What was appended around the time the voter was answered, in every partition.
      const from = epochOf(voter.startedAt) - 1000;
      const near = logged.filter((x) => x.timestamp >= from && x.timestamp <= from + 20_000);
      near.sort((a, b) => a.at.localeCompare(b.at, 'en', { numeric: true }));
      example(
        `  appended within 20 s of ${voterId} starting: ${near.length}; ${near.slice(0, 40).map(show).join(' | ')}`,
      );
    }
  }
  if (results && results.total > countedVoters) {
    doubleCounts += results.total - countedVoters;
    example(`results total ${results.total} > ${countedVoters} voters with a COUNTED decision`);
  }
  if (receiptsMissing > 0) example(`${receiptsMissing} decisions have no matching ballot receipt in CQL`);

  // The analytics stage: one record per decision record, read once it has caught up (or at the deadline).
  const saltRow = (
    await o.cql.execute(`SELECT salt FROM ${o.keyspace}.analytics_salts WHERE poll_id = ?`, [o.pollId], {
      prepare: true,
    })
  ).first();
  const salt = saltRow?.get('salt') as Buffer | undefined;
  const line = (key: string, optionId: string, counted: boolean, reason: string | null) =>
    `${key} ${optionId} ${counted} ${reason}`;
  const expectedAnalytics = new Map<string, number>();
  for (const d of decisionRecords) {
    const k = line(`${o.pollId}/${salt ? pseudonymOf(salt, d.voterId) : '?'}`, d.optionId, d.counted, d.reason);
    expectedAnalytics.set(k, (expectedAnalytics.get(k) ?? 0) + 1);
  }
  let analyticsRecords = 0;
  let analyticsMismatches = decisionRecords.length;
  const analyticsDeadline = performance.now() + o.convergeTimeoutMs;
  for (;;) {
    const got = await readAnalytics({
      brokers: o.brokers,
      prefix: o.prefix,
      pollId: o.pollId,
      registryUrl: o.registryUrl,
      timeoutMs: 60_000,
    });
    analyticsRecords = got.length;
    const left = new Map(expectedAnalytics);
    let extra = 0;
    for (const a of got) {
      const k = line(a.key, a.optionId, a.counted, a.reason);
      const n = left.get(k) ?? 0;
      if (n > 0) left.set(k, n - 1);
      else {
        extra++;
        if (extra <= 5) example(`analytics record without its decision record: ${k}`);
      }
    }
    const missing = [...left.values()].reduce((a, b) => a + b, 0);
    analyticsMismatches = missing + extra;
    if (analyticsMismatches === 0 || got.length > decisionRecords.length || performance.now() > analyticsDeadline) {
      if (missing > 0) example(`${missing} decision records without their analytics record`);
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }

  // What a voter sees: votes/me names the counted vote, for a sample of the counted voters.
  const sample = [...countedVoteOf.entries()].filter(
    (_, i, all) => i % Math.max(1, Math.floor(all.length / o.receiptSample)) === 0,
  );
  let receiptMismatches = 0;
  for (const [voterId, counted] of sample.slice(0, o.receiptSample)) {
    const token = await mintToken({ privateKeyPem: o.privateKeyPem, sub: voterId });
    const res = await fetch(`${o.apiUrl()}/v1/polls/${o.pollId}/votes/me`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { voteId?: string; optionId?: string; status?: string };
    if (
      res.status !== 200 ||
      body.voteId !== counted.voteId ||
      body.optionId !== counted.optionId ||
      body.status !== 'counted'
    ) {
      receiptMismatches++;
      example(`${voterId} votes/me ${res.status} ${JSON.stringify(body)}; counted ${counted.voteId}`);
    }
  }

  return {
    accepted: o.voters.filter((v) => v.accepted.size > 0).length,
    refused: o.voters.filter((v) => v.accepted.size === 0 && v.first === 'refused').length,
    unknown: o.voters.filter((v) => v.accepted.size === 0 && v.first === 'unknown').length,
    lostAcknowledged,
    doubleCounts,
    wrongAccepted,
    refusedCounted,
    agree,
    receiptsMissing,
    duplicateDecisionRecords,
    analyticsMismatches,
    analyticsRecords,
    receiptMismatches,
    receiptsChecked: Math.min(sample.length, o.receiptSample),
    convergeMs,
    results,
    cql: cqlTotals,
    mqtt: mqttTotals,
    countedByOption,
    decisions: decisions?.length ?? 0,
    examples,
  };
}
