/**
 * Recounts a poll from the immutable votes log and compares the result with every place it is published:
 *   npm run recount -- --poll <pollId> [--results-url http://127.0.0.1:8080] [--mqtt-url mqtt://127.0.0.1:1883]
 *                      [--no-cql] [--allow-live] [--json] [--timeout-ms 60000]
 * Kafka, the registry, the CQL database and the stream's rules (STREAM_GRACE_MS, STREAM_IDLE_TIMEOUT_MS) come
 * from the same environment variables the stream processors read, so it runs as well against production.
 * Exit status: 0 when the recount and every source agree on a final tally; 1 on any difference; 2 on bad usage
 * or when a source does not yet hold the final tally (unless --allow-live).
 */
import { parseArgs } from 'node:util';
import { createLogger } from '@votestream/runtime';
import { loadStreamConfig } from '../config.ts';
import { formatReport, runRecount } from '../recount/sources.ts';

const usage =
  'usage: npm run recount -- --poll <pollId> [--results-url URL] [--mqtt-url URL] [--no-cql] [--allow-live] [--json] [--timeout-ms N]\n';
let values: ReturnType<typeof parse>['values'];
function parse() {
  return parseArgs({
    options: {
      poll: { type: 'string' },
      'results-url': { type: 'string' },
      'mqtt-url': { type: 'string' },
      'no-cql': { type: 'boolean', default: false },
      'allow-live': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '60000' },
    },
  });
}
try {
  values = parse().values;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}`);
  process.exit(2);
}
const timeoutMs = Number(values['timeout-ms']);
if (!values.poll || !Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  process.stderr.write(usage);
  process.exit(2);
}

const config = loadStreamConfig();
const logger = createLogger('recount', config.logLevel === 'info' ? 'warn' : config.logLevel);
const report = await runRecount({
  pollId: values.poll,
  kafkaBrokers: config.kafkaBrokers,
  kafkaSecurity: config.kafkaSecurity,
  schemaRegistryUrl: config.schemaRegistryUrl,
  topicPrefix: config.topicPrefix,
  rules: { graceMs: config.graceMs, idleTimeoutMs: config.idleTimeoutMs },
  ...(values['no-cql']
    ? {}
    : {
        cql: {
          contactPoints: config.cqlContactPoints,
          localDataCenter: config.cqlLocalDataCenter,
          keyspace: config.cqlKeyspace,
          security: config.cqlSecurity,
        },
      }),
  ...(values['results-url'] ? { resultsUrl: values['results-url'] } : {}),
  ...(values['mqtt-url'] ? { mqttUrl: values['mqtt-url'] } : {}),
  readTimeoutMs: timeoutMs,
  logger,
});
process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
process.exit(!report.agrees ? 1 : report.notFinal.length > 0 && !values['allow-live'] ? 2 : 0);
