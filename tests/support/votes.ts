// A voter's view of a running votestream (any deploy form: sources, build, compose env): cast a vote over plain
// HTTP with a solved proof of work, wait for the tally in the results API and on the retained MQTT totals topic.
// Real services only. Polls are created with the kit's createPoll (@votestream/devstack).
import { randomUUID } from 'node:crypto';
import { eventually, isolatedEnv, uniqueId } from '@votestream/devstack';
import { mintToken } from '@votestream/ingest';
import { type AltchaChallenge, encodeAltchaPayload, solveAltcha } from '@votestream/sdk';
import mqtt from 'mqtt';

/** Settings that keep one test's system apart from every other run on the shared stack (plus a cheap proof of work). */
export function isolatedSystemEnv(id: string): Record<string, string> {
  return {
    ...isolatedEnv(id),
    ALTCHA_MAX_NUMBER: '1000',
    STREAM_GRACE_MS: '1000',
  };
}

/** One vote as a client sends it: challenge, proof of work, POST with an Idempotency-Key. */
export async function castVote(
  apiUrl: string,
  privateKeyPem: string,
  pollId: string,
  voterId: string,
  optionId: string,
) {
  const token = await mintToken({ privateKeyPem, sub: voterId });
  // A challenge is bound to (voter, poll): it is fetched with the voter's token.
  const challenge = (await (
    await fetch(`${apiUrl}/v1/challenge?pollId=${encodeURIComponent(pollId)}`, {
      headers: { authorization: `Bearer ${token}` },
    })
  ).json()) as AltchaChallenge;
  const altcha = encodeAltchaPayload(challenge, await solveAltcha(challenge));
  const res = await fetch(`${apiUrl}/v1/polls/${pollId}/votes`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
      'x-altcha': altcha,
    },
    body: JSON.stringify({ optionId }),
  });
  return { status: res.status, body: (await res.json()) as { voteId?: string; code?: string } };
}

export interface Totals {
  totals: Record<string, number>;
  total: number;
}

/** Waits until the results API shows exactly `total` votes, and returns what it shows then. */
export function resultsWithTotal(apiUrl: string, pollId: string, total: number, timeoutMs = 90_000): Promise<Totals> {
  return eventually(
    `${total} votes in the results of ${pollId}`,
    async () => {
      const res = await fetch(`${apiUrl}/v1/polls/${pollId}/results`);
      if (res.status !== 200) return undefined;
      const r = (await res.json()) as Totals;
      return r.total === total ? { totals: r.totals, total: r.total } : undefined;
    },
    timeoutMs,
  );
}

/** Subscribes to the poll's retained live totals (what a TV graphics system sees) until they show `total`. */
export async function mqttTotalsWithTotal(mqttUrl: string, pollId: string, total: number, timeoutMs = 90_000) {
  const client = await mqtt.connectAsync(mqttUrl, { clientId: uniqueId('tv-'), reconnectPeriod: 0 });
  try {
    let last: Totals | undefined;
    client.on('message', (_topic, payload) => {
      last = JSON.parse(payload.toString()) as Totals;
    });
    await client.subscribeAsync(`votestream/polls/${pollId}/totals`, { qos: 1 });
    return await eventually(
      `${total} votes on the MQTT totals of ${pollId}`,
      async () => (last?.total === total ? { totals: last.totals, total: last.total } : undefined),
      timeoutMs,
    );
  } finally {
    await client.endAsync();
  }
}
