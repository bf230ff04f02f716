import type { ReadModels } from '@votestream/read-models';
import type { Express, RequestHandler } from 'express';
import { authenticate } from '../auth/authenticate.ts';
import type { IngestContext } from '../context.ts';
import { echoedIdCharsMax } from '../http/headers.ts';
import { ProblemError } from '../http/problem.ts';
import { parseCreatePoll, pollView } from '../polls/admin.ts';
import type { VoteGuards } from '../votes/admission.ts';

/** Retry-After when the read models (Redis, CQL) cannot answer. */
const readModelsUnavailableRetryAfterS = 2;
const readModelsUnavailable = (store: string) =>
  new ProblemError('unavailable', `the ${store} store is unreachable`, undefined, readModelsUnavailableRetryAfterS);

/** Poll administration (admin scope), the public poll and results reads, and the voter's own receipt. */
export function registerPollRoutes(app: Express, ctx: IngestContext, json: RequestHandler): void {
  app.post('/v1/polls', json, async (req, res) => {
    const principal = await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const retryAfterS = await ctx.pollCreateLimit(principal.voterId);
    if (retryAfterS > 0) throw new ProblemError('rate_limited', 'too many polls created', undefined, retryAfterS);
    const now = ctx.now();
    const poll = await ctx.pollAdmin.create(parseCreatePoll(req.body, now), now);
    res.status(201).json(pollView(poll, ctx.now()));
  });
  // Polls and results are public, read-only data: any origin may read them (the live results page is served by
  // projections, from another origin on the local stack). Nothing with a token is shared this way.
  app.get('/v1/polls/:pollId', (req, res) => {
    res.set('Access-Control-Allow-Origin', '*');
    const entry = ctx.catalog.get(req.params.pollId);
    if (!entry) throw new ProblemError('poll_not_found', `no poll ${req.params.pollId.slice(0, echoedIdCharsMax)}`);
    res.json(pollView(entry.poll, ctx.now()));
  });
  app.post('/v1/polls/:pollId/close', async (req, res) => {
    await authenticate(ctx, req, ctx.config.jwtAdminScope);
    const poll = await ctx.pollAdmin.close(req.params.pollId, ctx.now());
    res.status(200).json(pollView(poll, ctx.now()));
  });
  app.get('/v1/polls/:pollId/results', async (req, res) => {
    res.set('Access-Control-Allow-Origin', '*');
    const entry = ctx.catalog.get(req.params.pollId);
    if (!entry) throw new ProblemError('poll_not_found', `no poll ${req.params.pollId.slice(0, echoedIdCharsMax)}`);
    let results: Awaited<ReturnType<ReadModels['getResults']>>;
    try {
      results = await ctx.readModels.getResults(entry.poll.pollId);
    } catch (err) {
      ctx.logger.error({ err }, 'results read failed');
      throw readModelsUnavailable('results');
    }
    if (results === null) {
      // No tally yet: every option at zero, version 0 (any real tally is newer).
      const totals: Record<string, number> = {};
      for (const o of entry.poll.options) totals[o.id] = 0;
      res.json({
        pollId: entry.poll.pollId,
        totals,
        total: 0,
        version: 0,
        asOf: new Date(ctx.now()).toISOString(),
        final: false,
      });
      return;
    }
    res.json(results);
  });
  app.get('/v1/polls/:pollId/votes/me', async (req, res) => {
    const principal = await authenticate(ctx, req);
    const pollId = req.params.pollId;
    if (!ctx.catalog.get(pollId))
      throw new ProblemError('poll_not_found', `no poll ${pollId.slice(0, echoedIdCharsMax)}`);
    let receipt: Awaited<ReturnType<ReadModels['getReceipt']>>;
    let pending: Awaited<ReturnType<VoteGuards['pending']>>;
    try {
      [receipt, pending] = await Promise.all([
        ctx.readModels.getReceipt(pollId, principal.voterId),
        ctx.guards.pending(pollId, principal.voterId),
      ]);
    } catch (err) {
      ctx.logger.error({ err }, 'receipt read failed');
      throw readModelsUnavailable('receipts');
    }
    if (receipt !== null) {
      res.json({ voteId: receipt.voteId, optionId: receipt.optionId, status: receipt.status, reason: receipt.reason });
      return;
    }
    if (pending !== null) {
      res.json({ voteId: pending.voteId, optionId: pending.optionId, status: 'pending', reason: null });
      return;
    }
    throw new ProblemError('no_vote', `no vote by this voter in poll ${pollId}`);
  });
}
