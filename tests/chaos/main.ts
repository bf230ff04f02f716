// npm run chaos -- [--kills 100] [--voters-per-second 20] [--minutes 60] [--seed N] [--targets ingest,stream,projections,kafka]
// Runs the system on the local 3-node Kafka cluster (started and stopped by the run if it was down), injects
// random faults one at a time under a voter load, audits the outcome and prints the table (tests/chaos/run.ts).
// Exits 1 when a correctness row is not 0 or the stores disagree; 2 on a usage error.
import { parseArgs } from 'node:util';
import { chaosCorrect, formatChaos, runChaos } from './run.ts';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    'voters-per-second': { type: 'string', default: '20' },
    minutes: { type: 'string', default: '60' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    targets: { type: 'string', default: 'ingest,stream,projections,kafka' },
  },
});
const kills = Number(values.kills);
const rate = Number(values['voters-per-second']);
const minutes = Number(values.minutes);
const seed = Number(values.seed);
const targets = (values.targets ?? '').split(',').filter(Boolean);
const known = ['ingest', 'stream', 'projections', 'kafka'] as const;
if (
  !(Number.isInteger(kills) && kills >= 0 && kills <= 10_000) ||
  !(rate > 0 && rate <= 500) ||
  !(minutes > 0 && minutes <= 24 * 60) ||
  !Number.isInteger(seed) ||
  targets.length === 0 ||
  !targets.every((t) => (known as readonly string[]).includes(t))
) {
  console.error(
    'usage: npm run chaos -- --kills N(0..10000) --voters-per-second R(1..500) --minutes M --seed N --targets ingest,stream,projections,kafka',
  );
  process.exit(2);
}
// Ctrl-C / SIGTERM: exit through process.exit, so devstack's exit hook kills the service processes this run
// started (a Kafka node this run stopped with SIGSTOP stays stopped: `compose/native/stack cluster cont N`).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
console.log(`chaos: ${kills} faults at most, ${rate} voters/s, fault phase at most ${minutes} min, seed ${seed}`);
const result = await runChaos({
  kills,
  faultPhaseMsMax: minutes * 60_000,
  votersPerSecond: rate,
  targets: targets as (typeof known)[number][],
  instances: { ingest: 2, stream: 2, projections: 2 },
  processDownMs: 1000,
  brokerDownMs: 5000,
  recoverTimeoutMs: 90_000,
  comebackAfterMs: 35_000,
  convergeTimeoutMs: 180_000,
  seed,
  manageCluster: true,
  log: (line) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`),
});
console.log(`\n${formatChaos(result)}`);
process.exit(chaosCorrect(result) ? 0 : 1);
