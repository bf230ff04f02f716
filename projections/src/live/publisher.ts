import type { LiveSeries, Results } from '@votestream/read-models';
import { liveTopics } from '@votestream/read-models';
import { invariant, type Logger } from '@votestream/runtime';
import type { MqttClient } from 'mqtt';
import type { Counter, Gauge, Histogram } from 'prom-client';

interface PollLive {
  latest: Results;
  series: LiveSeries | null;
  /** Highest version acknowledged by the broker on this poll's topics (0: none in this process). */
  publishedVersion: number;
  /** A publish of this poll is awaiting its PUBACKs: at most one per poll, so a topic never sees versions out of order. */
  inFlight: boolean;
  /** Publish the latest again even if it is not newer (after a (re)connect: the broker may have lost it). */
  republish: boolean;
  nextAllowedAt: number;
  timer: NodeJS.Timeout | null;
}

export interface LivePublisherMetrics {
  messages: Counter<'topic_kind'>;
  coalesced: Counter;
  publishErrors: Counter;
  connected: Gauge;
  /** From the tally's asOf to the broker's PUBACK. */
  publishDelay: Histogram;
}

/**
 * Publishes live totals (and the per-window series) per poll over MQTT: retained, QoS 1, coalesced to at
 * most `messagesPerPollPerSecondMax` per topic per second, always the latest state, versions strictly
 * increasing per topic. Ordering holds because a poll has at most one publish in flight and mqtt.js
 * resends an unacknowledged QoS 1 packet before anything new after a reconnect. After every (re)connect the
 * latest state of every poll is published again (same version: a subscriber that drops versions <= the one it
 * has ignores it), which restores retained messages a restarted broker lost.
 */
export class LivePublisher {
  private readonly polls = new Map<string, PollLive>();
  private readonly intervalMs: number;
  private closed = false;

  constructor(
    private readonly client: MqttClient,
    private readonly opts: {
      messagesPerPollPerSecondMax: number;
      pollsMax: number;
      logger: Logger;
      metrics: LivePublisherMetrics;
    },
  ) {
    this.intervalMs = Math.ceil(1000 / opts.messagesPerPollPerSecondMax);
    client.on('connect', () => {
      opts.metrics.connected.set(1);
      for (const [pollId, p] of this.polls) {
        p.republish = true;
        this.flush(pollId, p);
      }
    });
    client.on('close', () => opts.metrics.connected.set(0));
  }

  /** Offers a poll's newest state; anything not newer than what was offered before is dropped. */
  offer(results: Results, series: LiveSeries | null): void {
    invariant(!this.closed, 'offer after close');
    invariant(series === null || series.version === results.version, 'series version must match results');
    let p = this.polls.get(results.pollId);
    if (p && results.version <= p.latest.version) return;
    if (!p) {
      p = {
        latest: results,
        series,
        publishedVersion: 0,
        inFlight: false,
        republish: false,
        nextAllowedAt: 0,
        timer: null,
      };
      this.polls.set(results.pollId, p);
      this.evictBeyondLimit();
    } else {
      if (p.latest.version > p.publishedVersion) this.opts.metrics.coalesced.inc();
      p.latest = results;
      p.series = series;
    }
    this.flush(results.pollId, p);
  }

  /** Latest offered version of a poll (tests, health). */
  versionOf(pollId: string): number | undefined {
    return this.polls.get(pollId)?.latest.version;
  }

  publishedVersionOf(pollId: string): number | undefined {
    return this.polls.get(pollId)?.publishedVersion;
  }

  close(): void {
    this.closed = true;
    for (const p of this.polls.values()) if (p.timer) clearTimeout(p.timer);
  }

  private evictBeyondLimit(): void {
    // The limit is on polls tracked; a forgotten poll's next tally is published as new (its version is higher).
    while (this.polls.size > this.opts.pollsMax) {
      let victim: string | undefined;
      let oldest = Number.POSITIVE_INFINITY;
      for (const [id, q] of this.polls) {
        if (q.inFlight || q.timer) continue;
        const at = Date.parse(q.latest.asOf);
        if (at < oldest) {
          oldest = at;
          victim = id;
        }
      }
      if (victim === undefined) return; // all busy: allow a temporary excess rather than reorder a topic
      this.polls.delete(victim);
    }
  }

  private flush(pollId: string, p: PollLive): void {
    if (this.closed || p.inFlight || !this.client.connected) return; // resumed on PUBACK or on connect
    const due = p.latest.version > p.publishedVersion || p.republish;
    if (!due) return;
    const now = Date.now();
    if (now < p.nextAllowedAt) {
      p.timer ??= setTimeout(() => {
        p.timer = null;
        this.flush(pollId, p);
      }, p.nextAllowedAt - now);
      return;
    }
    const results = p.latest;
    const series = p.series;
    p.inFlight = true;
    p.republish = false;
    p.nextAllowedAt = now + this.intervalMs;
    const { metrics, logger } = this.opts;
    const publishes: Promise<void>[] = [this.publish(liveTopics.totals(pollId), JSON.stringify(results), 'totals')];
    if (series) publishes.push(this.publish(liveTopics.series(pollId), JSON.stringify(series), 'series'));
    Promise.all(publishes).then(
      () => {
        p.inFlight = false;
        invariant(results.version >= p.publishedVersion, `poll ${pollId}: published version went backwards`);
        p.publishedVersion = results.version;
        metrics.publishDelay.observe(Math.max(0, Date.now() - Date.parse(results.asOf)) / 1000);
        this.flush(pollId, p);
      },
      (err: unknown) => {
        // The client is closing or the packet could not be sent; publish the latest again when connected.
        p.inFlight = false;
        p.republish = true;
        metrics.publishErrors.inc();
        logger.warn({ err, pollId, version: results.version }, 'live publish failed, will republish');
        if (this.client.connected) this.flush(pollId, p);
      },
    );
  }

  private publish(topic: string, payload: string, kind: 'totals' | 'series'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        if (err) return reject(err);
        this.opts.metrics.messages.inc({ topic_kind: kind });
        resolve();
      });
    });
  }
}
