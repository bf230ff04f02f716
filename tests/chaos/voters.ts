// A steady load of voters against one poll, through every ingest instance (as behind a load balancer), that
// behaves like the voter SDK and like impatient people: a vote that gets no answer, a 5xx or a refused
// connection is resent with the same Idempotency-Key after a back-off (to any instance); some voters send
// their request twice more after the answer (a double tap); some vote a second time with another option.
// Every answer is written down, so the audit can tell what each voter was told.
import { randomUUID } from 'node:crypto';
import { mintToken } from '@votestream/ingest';

/** What one voter was told, from all the answers to all the requests they sent. */
export interface VoterRecord {
  voterId: string;
  /** When the voter's first request left (performance.now()). */
  startedAt: number;
  /** voteId -> optionId of every 202 the voter received (a resend of the same key should name the same vote). */
  accepted: Map<string, string>;
  /** The vote of the first Idempotency-Key: accepted (a 202), refused (a 4xx) or unknown (no answer or 5xx). */
  first: 'accepted' | 'refused' | 'unknown';
  /** Answers, for the audit's report: `${status} ${code}` (or `error <name>`). */
  answers: string[];
}

export interface VoterLoadOptions {
  apiUrls: () => string[];
  pollId: string;
  options: string[];
  privateKeyPem: string;
  /** New voters per second. */
  votersPerSecond: number;
  /** Voters still sending at the same time, at most; a voter due beyond it is skipped (counted in `skipped`). */
  votersInFlightMax: number;
  /** Resends of one request after no answer / a 5xx, at most. */
  resendsMax: number;
  requestTimeoutMs: number;
  /**
   * A voter left without an answer comes back this much later and resends the same request (same
   * Idempotency-Key), as the SDK's outbox does when the app is opened again. 0: never.
   */
  comebackAfterMs: number;
  idPrefix: string;
}

export class VoterLoad {
  readonly voters: VoterRecord[] = [];
  skipped = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private readonly running = new Set<Promise<void>>();
  /** performance.now() of every voter's first 202, in arrival order. */
  readonly acceptedAt: number[] = [];

  constructor(private readonly o: VoterLoadOptions) {}

  /** Voters whose first request has left by now. */
  get started(): number {
    return this.voters.length;
  }

  start(): void {
    const periodMs = 1000 / this.o.votersPerSecond;
    let due = performance.now();
    const tick = () => {
      const now = performance.now();
      while (due <= now) {
        due += periodMs;
        if (this.inFlight >= this.o.votersInFlightMax) {
          this.skipped++;
          continue;
        }
        const p = this.voter(this.next++);
        this.running.add(p);
        void p.finally(() => this.running.delete(p));
      }
      this.timer = setTimeout(tick, Math.max(1, due - performance.now()));
    };
    tick();
  }

  /** Stops starting voters and waits for the ones in flight to finish. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private async voter(i: number): Promise<void> {
    this.inFlight++;
    try {
      const voterId = `${this.o.idPrefix}-v${i}`;
      const record: VoterRecord = {
        voterId,
        startedAt: performance.now(),
        accepted: new Map(),
        first: 'unknown',
        answers: [],
      };
      this.voters.push(record);
      const token = await mintToken({ privateKeyPem: this.o.privateKeyPem, sub: voterId });
      const { options } = this.o;
      const optionId = options[i % options.length] as string;
      const key = randomUUID();
      let first = await this.send(record, token, key, optionId, true);
      if (first === 'unknown' && this.o.comebackAfterMs > 0 && this.timer !== undefined) {
        await new Promise((r) => setTimeout(r, this.o.comebackAfterMs));
        first = await this.send(record, token, key, optionId, true);
      }
      record.first = first;
      if (i % 10 === 3) await this.send(record, token, key, optionId, false); // a double tap
      if (i % 10 === 7) {
        // A second vote, for another option: ingest answers already_voted (409) naming the counted vote.
        await this.send(record, token, randomUUID(), options[(i + 1) % options.length] as string, false);
      }
    } finally {
      this.inFlight--;
    }
  }

  /** One request and its resends; the outcome of the last answer. */
  private async send(
    record: VoterRecord,
    token: string,
    key: string,
    optionId: string,
    first: boolean,
  ): Promise<'accepted' | 'refused' | 'unknown'> {
    const urls = this.o.apiUrls();
    for (let attempt = 0; ; attempt++) {
      const url = urls[(record.answers.length + attempt + Number(first)) % urls.length] as string;
      let outcome: 'accepted' | 'refused' | 'unknown';
      try {
        const res = await fetch(`${url}/v1/polls/${this.o.pollId}/votes`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ optionId }),
          signal: AbortSignal.timeout(this.o.requestTimeoutMs),
        });
        const body = (await res.json().catch(() => ({}))) as { voteId?: string; code?: string };
        record.answers.push(`${res.status} ${body.code ?? ''}`.trim());
        if (res.status === 202 && body.voteId) {
          if (record.accepted.size === 0) this.acceptedAt.push(performance.now());
          record.accepted.set(body.voteId, optionId);
          outcome = 'accepted';
        } else if (res.status === 409 && body.code === 'already_voted') {
          // An earlier copy of this request (or another vote) got in, but this voter was never told which: not
          // a refusal of the vote, and nothing to resend.
          return 'unknown';
        } else if (res.status >= 400 && res.status < 500) outcome = 'refused';
        else outcome = 'unknown';
      } catch (err) {
        record.answers.push(`error ${(err as Error).name}`);
        outcome = 'unknown';
      }
      if (outcome !== 'unknown' || attempt >= this.o.resendsMax) return outcome;
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 4000)));
    }
  }
}
