import type { Express } from 'express';
import { networkPrefixOf } from '../abuse/rate-limit.ts';
import { authenticate } from '../auth/authenticate.ts';
import type { IngestContext } from '../context.ts';
import { boundedHeader, headerCharsMax } from '../http/headers.ts';
import { ProblemError } from '../http/problem.ts';
import { isPollId } from '../votes/vote-body.ts';

/** `GET /v1/challenge?pollId=`: a proof-of-work challenge bound to this voter in this poll. */
export function registerChallengeRoutes(app: Express, ctx: IngestContext): void {
  // Counted against the voter, network and device (abuse/challenge-policy), which also sets its difficulty.
  app.get('/v1/challenge', async (req, res) => {
    const principal = await authenticate(ctx, req);
    const pollId = req.query.pollId;
    if (typeof pollId !== 'string' || !isPollId(pollId)) {
      throw new ProblemError('invalid_body', 'query parameter pollId required: [a-z0-9-]{1,64}');
    }
    if (ctx.catalog.get(pollId) === undefined) throw new ProblemError('poll_not_found', `no poll ${pollId}`);
    const maxNumber = await ctx.challengePolicy.admit(
      principal.voterId,
      networkPrefixOf(ctx.clientAddress(req)),
      boundedHeader(req, 'x-device-id', headerCharsMax),
    );
    res.setHeader('Cache-Control', 'no-store');
    res.json(await ctx.challenges.issue(ctx.challenges.bind(principal.voterId, pollId), maxNumber));
  });
}
