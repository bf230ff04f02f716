// What the processor unit tests share: a registry-less serde, a fake poll catalog, the default stream config
// and processors built on them, driven by TaskDriver (stream/src/testing) on a manual clock. No stack needed.
import { createLogger } from '@votestream/runtime';
import type { PollDefinition } from '@votestream/schemas';
import { Registry } from 'prom-client';
import { loadStreamConfig } from '../../src/config.ts';
import { AnalyticsProcessor } from '../../src/processors/analytics.ts';
import { DedupeProcessor } from '../../src/processors/dedupe.ts';
import { GlobalTallyProcessor } from '../../src/processors/global-tally.ts';
import { createLocalSerde } from '../../src/testing/local-serde.ts';
import type { ManualClock } from '../../src/testing/task-driver.ts';

export const config = loadStreamConfig({}); // windowMs 1000, graceMs 2000, idleTimeoutMs 3000
export const serde = createLocalSerde();
export const logger = createLogger('unit', 'silent');

export const dedupeTopics = {
  votes: 'votes',
  voteDecisions: 'vote-decisions',
  tallyPartials: 'tally-partials',
  tallyChangelog: 'partial-tally-changelog',
  dedupeChangelog: 'dedupe-changelog',
};

/** The poll catalog as the dedupe stage reads it, with polls the test puts in. */
export class FakeCatalog {
  readonly polls = new Map<string, PollDefinition>();
  catchUps = 0;
  put(poll: PollDefinition): void {
    this.polls.set(poll.pollId, poll);
  }
  get(pollId: string): PollDefinition | undefined {
    return this.polls.get(pollId);
  }
  all(): IterableIterator<PollDefinition> {
    return this.polls.values();
  }
  async catchUp(): Promise<void> {
    this.catchUps++;
  }
}

export function dedupeProcessor(partition: number, catalog: FakeCatalog, clock: ManualClock): DedupeProcessor {
  return new DedupeProcessor(partition, {
    config,
    serde,
    catalog,
    logger,
    registry: new Registry(),
    clock: clock.now,
    topics: dedupeTopics,
  });
}

export const globalTopics = {
  tallyPartials: 'tally-partials',
  tallies: 'tallies',
  changelog: 'global-tally-changelog',
};

export function globalTallyProcessor(partition: number, sources: number): GlobalTallyProcessor {
  return new GlobalTallyProcessor(partition, { config, serde, sources, logger, topics: globalTopics });
}

export const analyticsTopics = {
  voteDecisions: 'vote-decisions',
  analyticsVotes: 'analytics-votes',
  positionChangelog: 'analytics-position-changelog',
};

/** The analytics stage with a fixed salt per poll (`salts`: pollId -> salt; a missing poll fails the test). */
export function analyticsProcessor(partition: number, salts: ReadonlyMap<string, Buffer>): AnalyticsProcessor {
  return new AnalyticsProcessor(partition, {
    serde,
    topics: analyticsTopics,
    salts: {
      get: (pollId) => {
        const salt = salts.get(pollId);
        if (salt === undefined) throw new Error(`no salt for ${pollId} in the test`);
        return pollId.endsWith('-async') ? Promise.resolve(salt) : salt;
      },
    },
  });
}
