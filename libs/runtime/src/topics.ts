/**
 * The Kafka topics of the pipeline, one name each. `docs/architecture.md` (Data stores: Kafka) lists
 * their keys, partitions, retention and which service writes and reads them; keep the two in step.
 */
export interface Topics {
  /** VoteCast, key pollId/voterId. Written by ingest, read by stream (dedupe). */
  votes: string;
  /** PollEvent, key pollId, compacted. Written by ingest (admin API), read by everyone (the poll catalog). */
  polls: string;
  /** VoteDecision, key pollId/voterId. Written by stream (dedupe), read by projections (receipts). */
  voteDecisions: string;
  /** TallyUpdate per source partition, key pollId. Written by dedupe tasks, read by the global tally stage. */
  tallyPartials: string;
  /** TallyUpdate, key pollId. Written by the global tally stage, read by projections. */
  tallies: string;
}

export function topicNames(prefix: string): Topics {
  return {
    votes: `${prefix}votes`,
    polls: `${prefix}polls`,
    voteDecisions: `${prefix}vote-decisions`,
    tallyPartials: `${prefix}tally-partials`,
    tallies: `${prefix}tallies`,
  };
}

/** Key of a vote and of its decision: one voter's votes in one poll always share a partition. */
export function voteKey(pollId: string, voterId: string): string {
  return `${pollId}/${voterId}`;
}
