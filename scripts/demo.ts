// The demo behind `npm run demo` (scripts/demo starts the stack first): starts ingest, the stream processors and
// projections as their own processes, creates a poll, and runs a simulated audience through the voter SDK:
// honest voters, voters who try again from a second device, bad actors (forged tokens, no proof of work, a
// replayed proof of work) and a stalled ingest node whose votes reach the stream late. It shows the live totals
// from MQTT in the terminal, checks that they converge on exactly the accepted votes, closes the poll, waits
// for the final tally, and keeps running (the live results page stays up) until Ctrl-C.
//
//   npm run demo -- [--voters 2000] [--concurrency 24] [--exit]
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startVotestream } from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import { createCqlClient } from '@votestream/runtime';
import {
  type AltchaChallenge,
  createVoterClient,
  encodeAltchaPayload,
  solveAltcha,
  type TotalsUpdate,
  type VoteOutcome,
} from '@votestream/sdk';

const { values: args } = parseArgs({
  options: {
    voters: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '24' },
    exit: { type: 'boolean', default: false },
  },
});
const votersCount = Number(args.voters);
const concurrency = Number(args.concurrency);
if (!Number.isInteger(votersCount) || votersCount < 10 || votersCount > 100_000) {
  throw new Error('--voters must be an integer from 10 to 100000');
}
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
  throw new Error('--concurrency must be an integer from 1 to 256');
}

const stackDir = process.env.VOTESTREAM_STACK_DIR ?? join(repoRoot, '.stack');
const privateKeyPem = readFileSync(join(stackDir, 'secrets/dev-jwt-private.pem'), 'utf8');
const ports = { ingest: 8080, projections: 8090, streamMetrics: 9470 };
const graceMs = 2000;
const windowMs = 1000;
const idleMs = 1000;
const out = (line: string) => process.stdout.write(`${line}\n`);

out('starting ingest, stream and projections (logs in .stack/logs/demo/) ...');
const system = await startVotestream({
  prefix: 'votestream.',
  ports,
  logDir: join(stackDir, 'logs/demo'),
  env: {
    // A demo audience on one laptop: a light proof of work, and every voter shares 127.0.0.1.
    ALTCHA_MAX_NUMBER: '2000',
    RATE_NETWORK_POINTS: '100000',
    STREAM_GRACE_MS: String(graceMs),
    STREAM_WINDOW_MS: String(windowMs),
    // A task with no new votes for this long moves its watermark on by the clock, as a stalled source would let it.
    STREAM_IDLE_TIMEOUT_MS: String(idleMs),
    // A few milliseconds of linger, so that the stalled ingest node holds some votes when it freezes.
    PRODUCE_LINGER_MS: '20',
  },
});
let pollIdShown = '';
const pollIdForDisplay = () => pollIdShown;
let stopping = false;
const shutdown = async (code: number) => {
  if (stopping) return;
  stopping = true;
  out('\nstopping the services ...');
  await system.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  await run();
  if (args.exit) await shutdown(0);
  out(`\nthe services keep running; live results page: ${system.projectionsUrl}/live/${pollIdForDisplay()}`);
  out('press Ctrl-C to stop everything the demo started');
} catch (err) {
  out(`demo failed: ${(err as Error).stack ?? String(err)}`);
  await shutdown(1);
}

async function run(): Promise<void> {
  const pollId = `final-${Date.now().toString(36)}`;
  pollIdShown = pollId;
  const options = [
    { id: 'aurora', label: 'Aurora' },
    { id: 'blaze', label: 'Blaze' },
    { id: 'cascade', label: 'Cascade' },
    { id: 'drift', label: 'Drift' },
  ];
  const weights = [0.4, 0.3, 0.2, 0.1];
  const admin = await mintToken({ privateKeyPem, sub: 'demo-admin', admin: true, ttlS: 3600 });
  const created = await fetch(`${system.apiUrl}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pollId, title: 'Who wins the final?', options }),
  });
  if (created.status !== 201) throw new Error(`creating the poll failed: ${created.status} ${await created.text()}`);
  out(`poll ${pollId} is open: ${options.map((o) => o.label).join(', ')}`);
  out(`live results page: ${system.projectionsUrl}/live/${pollId}\n`);

  // Live totals, as a TV graphics system sees them: MQTT over WebSockets, stale versions dropped.
  const viewer = createVoterClient({ apiUrl: system.apiUrl, mqttUrl: 'ws://127.0.0.1:9001', getToken: () => '' });
  let latest: TotalsUpdate | null = null;
  let lastPrint = 0;
  const show = (u: TotalsUpdate, force = false) => {
    const now = Date.now();
    if (!force && now - lastPrint < 500) return;
    lastPrint = now;
    const cells = options.map((o) => {
      const n = u.totals[o.id] ?? 0;
      const pct = u.total === 0 ? 0 : (100 * n) / u.total;
      return `${o.label} ${String(n).padStart(5)} ${pct.toFixed(1).padStart(5)}%`;
    });
    out(`  live v${u.version}${u.final ? ' FINAL' : ''}  total ${String(u.total).padStart(6)} | ${cells.join(' | ')}`);
  };
  const subscription = await viewer.subscribeResults(pollId, (u) => {
    latest = u;
    show(u);
  });

  const accepted = new Map<string, number>(options.map((o) => [o.id, 0]));
  const tally: Record<string, number> = {};
  const note = (what: string) => {
    tally[what] = (tally[what] ?? 0) + 1;
  };
  const pick = (i: number) => {
    let x = ((i * 2654435761) % 1000) / 1000;
    for (let k = 0; k < options.length; k++) {
      x -= weights[k]!;
      if (x < 0) return options[k]!.id;
    }
    return options[options.length - 1]!.id;
  };
  const voteAs = async (voterId: string, optionId: string): Promise<VoteOutcome> => {
    const token = await mintToken({ privateKeyPem, sub: voterId, ttlS: 3600 });
    const client = createVoterClient({ apiUrl: system.apiUrl, getToken: () => token });
    try {
      return await client.castVote(pollId, optionId);
    } finally {
      await client.close();
    }
  };

  // The audience: honest voters; every tenth also tries again from a second device with another option.
  let next = 0;
  let stalled = false;
  const stallAt = Math.floor(votersCount * 0.6);
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= votersCount) return;
      if (i === stallAt && !stalled) {
        stalled = true;
        void stallIngest();
      }
      const optionId = pick(i);
      const first = await voteAs(`demo-voter-${i}`, optionId);
      note(`first vote: ${first.kind}`);
      if (first.kind === 'accepted') accepted.set(optionId, (accepted.get(optionId) ?? 0) + 1);
      if (i % 10 === 0) {
        const again = await voteAs(
          `demo-voter-${i}`,
          options[(options.findIndex((o) => o.id === optionId) + 1) % 4]!.id,
        );
        note(`second vote from another device: ${again.kind}`);
      }
    }
  };
  // A stalled ingest node (a long GC pause, a frozen VM): votes it already stamped reach Kafka seconds later,
  // after their event-time window closed. They still count, and the tally marks them late.
  async function stallIngest() {
    const pauseMs = windowMs + graceMs + idleMs + 2000;
    // Freeze it at a moment when it holds votes it has stamped but not yet handed to Kafka.
    const by = Date.now() + 5000;
    while (Date.now() < by) {
      const metrics = await (await fetch(`${system.ingestMetricsUrl}/metrics`)).text();
      if (/ingest_produce_votes_in_flight\{[^}]*\} [1-9]/.test(metrics)) break;
    }
    out(`  (ingest stalls for ${pauseMs} ms: the votes it holds will reach the stream late)`);
    process.kill(system.ingest.pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, pauseMs));
    process.kill(system.ingest.pid, 'SIGCONT');
  }

  const t0 = Date.now();
  await Promise.all([...Array(concurrency)].map(worker));
  await badActors(pollId, options[0]!.id, note, (o) => accepted.set(o, (accepted.get(o) ?? 0) + 1));
  const seconds = (Date.now() - t0) / 1000;

  const expectedTotal = [...accepted.values()].reduce((a, b) => a + b, 0);
  out(`\naudience done in ${seconds.toFixed(1)} s; what the voters and bad actors got back:`);
  for (const [what, n] of Object.entries(tally).sort()) out(`  ${String(n).padStart(6)}  ${what}`);

  out(`\nwaiting for the live totals to reach the ${expectedTotal} accepted votes ...`);
  await until(() => (latest as TotalsUpdate | null)?.total === expectedTotal, 120_000, 'live totals to converge');
  const close = await fetch(`${system.apiUrl}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
  });
  if (close.status !== 200) throw new Error(`closing the poll failed: ${close.status} ${await close.text()}`);
  out('poll closed; waiting for the final tally (after the grace period) ...');
  await until(() => (latest as TotalsUpdate | null)?.final === true, 120_000, 'the final tally');
  const final = latest as unknown as TotalsUpdate;
  show(final, true);

  const results = (await (await fetch(`${system.apiUrl}/v1/polls/${pollId}/results`)).json()) as {
    totals: Record<string, number>;
    total: number;
    final: boolean;
  };
  out('\n  option      accepted (202)   live (MQTT)   results API');
  let exact = true;
  for (const o of options) {
    const a = accepted.get(o.id) ?? 0;
    const m = final.totals[o.id] ?? 0;
    const r = results.totals[o.id] ?? 0;
    exact &&= a === m && a === r;
    out(`  ${o.label.padEnd(10)} ${String(a).padStart(12)} ${String(m).padStart(13)} ${String(r).padStart(13)}`);
  }
  out(exact ? '\nevery accepted vote counted exactly once.' : '\nMISMATCH between accepted votes and the tally!');
  // The CQL tally row (the source of truth behind Redis) also says how many votes arrived after their window closed.
  const cql = createCqlClient({
    contactPoints: ['127.0.0.1:9042'],
    localDataCenter: 'datacenter1',
    keyspace: 'votestream',
  });
  try {
    const row = (
      await cql.execute('SELECT late_votes FROM poll_totals WHERE poll_id = ?', [pollId], { prepare: true })
    ).first();
    out(
      `${Number(row?.get('late_votes') ?? 0)} of them reached the stream after their 1 s window had closed (late): counted all the same.`,
    );
  } finally {
    await cql.shutdown();
  }
  await subscription.close();
  await viewer.close();
  if (!exact) throw new Error('the final tally does not match the accepted votes');
}

/** Requests a bot would send: a token signed by someone else's key, no proof of work, a replayed proof of work. */
async function badActors(
  pollId: string,
  optionId: string,
  note: (what: string) => void,
  onAccepted: (optionId: string) => void,
): Promise<void> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const forgedKey = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const body = JSON.stringify({ optionId });
  const post = async (token: string, altcha?: string) => {
    const res = await fetch(`${system.apiUrl}/v1/polls/${pollId}/votes`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': randomUUID(),
        ...(altcha ? { 'x-altcha': altcha } : {}),
      },
      body,
    });
    const problem = (await res.json()) as { code?: string };
    return `${res.status} ${problem.code ?? ''}`.trim();
  };
  for (let i = 0; i < 50; i++) {
    const forged = await mintToken({ privateKeyPem: forgedKey, sub: `bot-${i}`, ttlS: 600 });
    note(`bot with a forged token: ${await post(forged)}`);
  }
  for (let i = 0; i < 50; i++) {
    const token = await mintToken({ privateKeyPem, sub: `lazy-bot-${i}`, ttlS: 600 });
    note(`bot without proof of work: ${await post(token)}`);
  }
  // One proof of work solved once, replayed by 30 bot accounts at the same moment: it buys one vote at most.
  // (Challenges are bound to one voter and poll: the one it was issued to can use it once, the others never.)
  const bots = await Promise.all(
    [...Array(30)].map((_, i) => mintToken({ privateKeyPem, sub: `replay-bot-${i}`, ttlS: 600 })),
  );
  const challengeUrl = `${system.apiUrl}/v1/challenge?pollId=${encodeURIComponent(pollId)}`;
  const challenge = (await (
    await fetch(challengeUrl, { headers: { authorization: `Bearer ${bots[0]}` } })
  ).json()) as AltchaChallenge;
  const altcha = encodeAltchaPayload(challenge, await solveAltcha(challenge));
  const answers = await Promise.all(bots.map((token) => post(token, altcha)));
  for (const a of answers) {
    note(`bot replaying one solved challenge: ${a}`);
    if (a.startsWith('202')) onAccepted(optionId);
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
