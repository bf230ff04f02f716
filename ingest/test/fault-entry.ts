// ingest as a process with fault injection, for tests only (tests/system/truthful-202.test.ts): the same as
// src/main.ts, plus a SIGKILL of the whole process at a point of the vote path chosen by the vote's
// Idempotency-Key prefix, once per key (a resend with the same key goes through: the key is remembered as a file
// in FAULT_MARKER_DIR, across restarts). Production runs src/main.ts, which sets no faults.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, onShutdown } from '@votestream/runtime';
import type { VoteCast } from '@votestream/schemas';
import { ingestStopBoundMs, loadIngestConfig, startIngest } from '../src/index.ts';

const killAfterAdmitKeyPrefix = 'kill-after-admit-';
const killAfterAckKeyPrefix = 'kill-after-ack-';

const markerDir = process.env.FAULT_MARKER_DIR;
if (!markerDir) throw new Error('FAULT_MARKER_DIR must name a directory');
const dir = markerDir;

function killOnce(vote: VoteCast, prefix: string): void {
  if (!vote.idempotencyKey.startsWith(prefix)) return;
  const marker = join(dir, vote.idempotencyKey);
  if (existsSync(marker)) return;
  writeFileSync(marker, vote.voteId);
  process.kill(process.pid, 'SIGKILL');
}

const config = loadIngestConfig();
const logger = createLogger('ingest', config.logLevel);
const ingest = await startIngest(config, {
  logger,
  faults: {
    afterAdmit: (vote) => killOnce(vote, killAfterAdmitKeyPrefix),
    afterAck: (vote) => killOnce(vote, killAfterAckKeyPrefix),
  },
});
onShutdown(logger, [() => ingest.close()], ingestStopBoundMs(config));
