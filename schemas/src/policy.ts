// The project's schema rules, in one place: the offline check, `schemas:register` and the serde all read them.

/**
 * FULL_TRANSITIVE: every new version must be readable by every older version's readers AND able to read every older
 * version's records. Why full: producers (ingest, stream) and consumers (stream, projections, analysts' jobs) deploy
 * independently, in either order, so old readers meet new records and new readers meet old ones. Why transitive:
 * topics keep history (the compacted polls topic keeps a poll's record forever; votes and vote-decisions are replayed
 * for audit and for rebuilding state), so a reader can meet a record written by any earlier version, not only the
 * previous one. The price: fields can only be added or removed when they have a default, never renamed or retyped.
 */
export const compatibilityPolicy = 'FULL_TRANSITIVE' as const;
export type CompatibilityPolicy = typeof compatibilityPolicy;

/**
 * Subject naming: the record-name strategy, `<prefix><full record name>`, e.g. `io.votestream.TallyUpdate`.
 * Why not the topic-name strategy (`<topic>-value`): TallyUpdate is written to two topics (tally-partials and
 * tallies), and topic names carry a deployment prefix (TOPIC_PREFIX); one subject per record type gives one history,
 * one compatibility check and one version number per contract, the same in every environment. The prefix is empty in
 * production; tests use a unique prefix so they never touch the real subjects.
 */
export function subjectFor(fullName: string, subjectPrefix = ''): string {
  return `${subjectPrefix}${fullName}`;
}
