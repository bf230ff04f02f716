// The vote API calls every test and benchmark makes the same way: an admin creating and closing polls.
import { eventually, uniqueId } from './stack.ts';

/** An option as the API takes it; a plain string `x` stands for `{ id: x, label: x }`. */
export type OptionSpec = string | { id: string; label: string };

/**
 * Creates a poll through `POST /v1/polls` with an admin token; fails unless the API answers 201. `spec` is the
 * request body on top of the defaults (a unique pollId, options a/b); string options are ids and labels at once.
 */
export async function createPoll(
  apiUrl: string,
  adminToken: string,
  spec: { pollId?: string; title?: string; options?: OptionSpec[] } & Record<string, unknown> = {},
): Promise<{ pollId: string; status: string }> {
  const { options, ...rest } = spec;
  const pollId = spec.pollId ?? uniqueId('p-');
  const res = await fetch(`${apiUrl}/v1/polls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      title: 'Who should win?',
      ...rest,
      pollId,
      options: (
        options ?? [
          { id: 'a', label: 'Alice' },
          { id: 'b', label: 'Bob' },
        ]
      ).map((o) => (typeof o === 'string' ? { id: o, label: o } : o)),
    }),
  });
  if (res.status !== 201) throw new Error(`create poll ${pollId}: ${res.status} ${await res.text()}`);
  return (await res.json()) as { pollId: string; status: string };
}

/**
 * Closes a poll through `POST /v1/polls/:id/close` (fails unless the API answers 200) and waits until the close has
 * taken effect on that instance (`GET /v1/polls/:id` says closed): a close takes effect POLL_CLOSE_LEAD_MS after
 * the request. Returns the effective close time (epoch ms).
 */
export async function closePoll(apiUrl: string, adminToken: string, pollId: string): Promise<number> {
  const res = await fetch(`${apiUrl}/v1/polls/${pollId}/close`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}` },
  });
  if (res.status !== 200) throw new Error(`close poll ${pollId}: ${res.status} ${await res.text()}`);
  const { closesAt } = (await res.json()) as { closesAt: string | null };
  if (closesAt === null) throw new Error(`close poll ${pollId}: the answer has no closesAt`);
  await pollClosed(apiUrl, pollId);
  return Date.parse(closesAt);
}

/** Waits until `GET /v1/polls/:id` on that instance says the poll is closed (a close takes effect later). */
export async function pollClosed(apiUrl: string, pollId: string, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `poll ${pollId} closed`,
    async () => {
      const poll = (await (await fetch(`${apiUrl}/v1/polls/${pollId}`)).json()) as { status?: string };
      return poll.status === 'closed' ? true : undefined;
    },
    timeoutMs,
  );
}

/** The poll's results from `GET /v1/polls/:id/results` once they are final (after close + grace). */
export async function finalResults(
  apiUrl: string,
  pollId: string,
  timeoutMs: number,
): Promise<{ totals: Record<string, number>; total: number; final: boolean; version: number }> {
  return eventually(
    `the final results of ${pollId}`,
    async () => {
      const r = (await (await fetch(`${apiUrl}/v1/polls/${pollId}/results`)).json()) as {
        totals: Record<string, number>;
        total: number;
        final: boolean;
        version: number;
      };
      return r.final ? r : undefined;
    },
    timeoutMs,
  );
}
