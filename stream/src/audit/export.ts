import { createKafka, type KafkaSecurity, type Logger, readTopicToEnd, topicNames } from '@votestream/runtime';
import { type AuditChainHead, createAvroSerde, type TallyUpdate } from '@votestream/schemas';
import { type AuditLeaf, type ExportedChain, genesisOf, leafOf, linkOf } from './chain.ts';

/**
 * A poll's audit export: the signed checkpoint of its final tally and, per votes partition, the chained
 * decisions (no voter ids) with each link. It can be published (in production to the S3 bucket with Object
 * Lock); anyone can check it with `npm run audit -- verify --file`.
 */
export interface AuditExport {
  pollId: string;
  version: number;
  totals: Record<string, number>;
  heads: AuditChainHead[];
  signature: string | null;
  keyId: string | null;
  chains: ExportedChain[];
}

export interface AuditSources {
  pollId: string;
  kafkaBrokers: string[];
  kafkaSecurity: KafkaSecurity;
  schemaRegistryUrl: string;
  topicPrefix: string;
  readTimeoutMs: number;
  logger: Logger;
}

/**
 * Builds the export from Kafka: the final TallyUpdate of the poll on `tallies` (its checkpoint), then each
 * vote-decisions partition's decisions of the poll in offset order, chained as the dedupe task chained them:
 * every decision except UNKNOWN_POLL ones (the task knew no poll to chain them to), the first `count` of the
 * partition (decisions after the task finalised the poll are not chained).
 */
export async function exportAudit(s: AuditSources): Promise<AuditExport> {
  const kafka = createKafka({
    clientId: 'votestream-audit',
    brokers: s.kafkaBrokers,
    security: s.kafkaSecurity,
    logger: s.logger,
  });
  const serde = await createAvroSerde({ registryUrl: s.schemaRegistryUrl });
  const topics = topicNames(s.topicPrefix);
  const read = { timeoutMs: s.readTimeoutMs, groupIdPrefix: 'votestream-audit' };

  const decodeTally = serde.decoder('TallyUpdate');
  let final: TallyUpdate | undefined;
  await readTopicToEnd(
    kafka,
    topics.tallies,
    async (_p, m) => {
      if (!m.value) return;
      const u = await decodeTally(m.value);
      if (u.pollId === s.pollId && u.final && (!final || u.version > final.version)) final = u;
    },
    read,
  );
  if (!final) throw new Error(`poll ${s.pollId} has no final tally on ${topics.tallies} yet`);
  if (!final.audit)
    throw new Error(`the final tally of ${s.pollId} carries no audit checkpoint (written before the audit chain)`);
  const heads = final.audit.heads;
  const wanted = new Map(heads.map((h) => [h.source, h.count]));

  const decodeDecision = serde.decoder('VoteDecision');
  const leaves = new Map<number, AuditLeaf[]>(heads.map((h) => [h.source, []]));
  await readTopicToEnd(
    kafka,
    topics.voteDecisions,
    async (partition, m) => {
      if (!m.value) return;
      const d = await decodeDecision(m.value);
      if (d.vote.pollId !== s.pollId || d.reason === 'UNKNOWN_POLL') return;
      const list = leaves.get(partition);
      if (list && list.length < (wanted.get(partition) ?? 0)) list.push(leafOf(d));
    },
    read,
  );
  const chains: ExportedChain[] = [];
  for (const h of heads) {
    let link = genesisOf(s.pollId, h.source);
    chains.push({
      source: h.source,
      links: (leaves.get(h.source) ?? []).map((leaf) => {
        link = linkOf(link, leaf);
        return { leaf, link };
      }),
    });
  }
  return {
    pollId: s.pollId,
    version: final.version,
    totals: final.totals,
    heads,
    signature: final.audit.signature,
    keyId: final.audit.keyId,
    chains,
  };
}
