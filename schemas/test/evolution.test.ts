// A consumer on the old schema reads records written with the new one, and a consumer on the new schema reads old
// records, through the real registry (each side registers or finds its own writer schema, as services do).
import test from 'ava';
import { loadHistory } from '../src/contracts.ts';
import type { AvroComplexSchemaJson, AvroFieldJson } from '../src/index.ts';
import { createAvroSerde } from '../src/index.ts';
import { plain, registryUrl, samples, sampleVoteCast, uniqueSubjectPrefix } from './fixtures.ts';

const voteCastV1 = loadHistory('io.votestream.VoteCast')[0]!.schema;
const voteDecisionV1 = loadHistory('io.votestream.VoteDecision')[0]!.schema;

function evidenceOf(schema: AvroComplexSchemaJson): AvroComplexSchemaJson {
  return schema.fields!.find((f) => f.name === 'evidence')!.type as AvroComplexSchemaJson;
}

/** v2 of VoteCast: adds evidence.appVersion (nullable, default null) and drops evidence.userAgent (it had a default). */
function voteCastV2(): AvroComplexSchemaJson {
  const v2 = structuredClone(voteCastV1);
  const evidence = evidenceOf(v2);
  evidence.fields = evidence.fields!.filter((f) => f.name !== 'userAgent');
  const appVersion: AvroFieldJson = {
    name: 'appVersion',
    type: ['null', 'string'],
    default: null,
    doc: 'SDK version the vote came from, if the SDK sent it.',
  };
  evidence.fields.push(appVersion);
  return v2;
}

test('a consumer on v1 reads records written with v2, and a consumer on v2 reads v1 records', async (t) => {
  const subjectPrefix = uniqueSubjectPrefix('evolve');
  const v1 = await createAvroSerde({
    registryUrl,
    subjectPrefix,
    records: ['VoteCast'],
    schemas: { VoteCast: voteCastV1 },
  });
  // Registering v2 succeeds only because the registry (FULL_TRANSITIVE) accepts it after v1.
  const v2 = await createAvroSerde({
    registryUrl,
    subjectPrefix,
    records: ['VoteCast'],
    schemas: { VoteCast: voteCastV2() },
  });
  t.not(v1.schemaIds.VoteCast, v2.schemaIds.VoteCast);

  const vote = sampleVoteCast();
  const newRecord = { ...vote, evidence: { ...vote.evidence, userAgent: undefined, appVersion: '2.1.0' } };
  delete (newRecord.evidence as { userAgent?: unknown }).userAgent;
  const readByOld = plain(await v1.decoder('VoteCast')(v2.encoder('VoteCast')(newRecord as never)));
  // The old reader never sees appVersion; userAgent, which v2 no longer writes, takes its v1 default.
  t.deepEqual(readByOld, plain({ ...vote, evidence: { ...vote.evidence, userAgent: null } }));

  const readByNew = plain(await v2.decoder('VoteCast')(v1.encoder('VoteCast')(vote)));
  const { userAgent: _dropped, ...evidenceWithoutUserAgent } = vote.evidence;
  t.deepEqual(readByNew, plain({ ...vote, evidence: { ...evidenceWithoutUserAgent, appVersion: null } }));
});

test('a reject reason and an outcome added later reach an old consumer as the enum defaults OTHER and REJECTED', async (t) => {
  const subjectPrefix = uniqueSubjectPrefix('enum');
  const v2 = structuredClone(voteDecisionV1);
  const outcome = v2.fields!.find((f) => f.name === 'outcome')!.type as AvroComplexSchemaJson;
  outcome.symbols = [...outcome.symbols!, 'HELD_FOR_REVIEW'];
  const reason = (v2.fields!.find((f) => f.name === 'reason')!.type as AvroComplexSchemaJson[])[1]!;
  reason.symbols = [...reason.symbols!, 'RATE_LIMITED'];

  const old = await createAvroSerde({
    registryUrl,
    subjectPrefix,
    records: ['VoteDecision'],
    schemas: { VoteDecision: voteDecisionV1 },
  });
  const next = await createAvroSerde({
    registryUrl,
    subjectPrefix,
    records: ['VoteDecision'],
    schemas: { VoteDecision: v2 },
  });
  const decision = { ...samples.VoteDecision(), outcome: 'HELD_FOR_REVIEW', reason: 'RATE_LIMITED' };
  const seenByOld = (await old.decoder('VoteDecision')(next.encoder('VoteDecision')(decision as never))) as {
    outcome: string;
    reason: string | null;
  };
  t.is(seenByOld.outcome, 'REJECTED');
  t.is(seenByOld.reason, 'OTHER');
});

test('a service whose writer schema breaks the policy is refused at start-up with a pointer to schemas:check', async (t) => {
  const subjectPrefix = uniqueSubjectPrefix('refuse');
  await createAvroSerde({ registryUrl, subjectPrefix, records: ['VoteCast'], schemas: { VoteCast: voteCastV1 } });
  const broken = structuredClone(voteCastV1);
  broken.fields = broken.fields!.map((f) => (f.name === 'voterId' ? { ...f, name: 'voter' } : f)); // rename, no alias
  const err = await t.throwsAsync(
    createAvroSerde({ registryUrl, subjectPrefix, records: ['VoteCast'], schemas: { VoteCast: broken } }),
  );
  t.regex(
    err?.message ?? '',
    /^schema registry refused the writer schema for t-refuse-[^ ]+io\.votestream\.VoteCast: /,
  );
  t.regex(err?.message ?? '', /Run `npm run schemas:check`/);
});
