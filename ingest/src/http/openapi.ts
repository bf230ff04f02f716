import { idPattern } from '@votestream/schemas';
import { type ProblemCode, problemCodes } from './problem.ts';

/**
 * The v1 HTTP contract, served at GET /openapi.json. Keep in step with the routes. Problem codes come from
 * problem.ts (typed here; ingest/test/problem-contract.test.ts checks each response's status against the table).
 */

const problem = (codes: ProblemCode[], description: string) => ({
  description: `${description} Codes: ${codes.join(', ')}.`,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});
const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
const pollIdParam = { name: 'pollId', in: 'path', required: true, schema: { $ref: '#/components/schemas/Id' } };

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'votestream ingest API',
    version: '1.0.0',
    description:
      'The front door of votestream. A 202 on a vote means Kafka acknowledged it with acks=all. Errors are RFC 9457 problem+json with a stable `code`.',
  },
  servers: [{ url: 'http://127.0.0.1:8080' }],
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT (EdDSA or ES256); sub = voter id; admin endpoints need scope votestream:admin',
      },
    },
    schemas: {
      Id: { type: 'string', pattern: idPattern.source },
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status', 'code'],
        properties: {
          type: { type: 'string', format: 'uri' },
          title: { type: 'string' },
          status: { type: 'integer' },
          code: {
            type: 'string',
            // Generated from problem.ts, the one table of codes (the SDK's outcome codes are tested against both).
            enum: problemCodes,
          },
          detail: { type: 'string' },
          voteId: { type: 'string', format: 'uuid', description: 'With already_voted: the voter’s existing vote.' },
        },
      },
      CreatePoll: {
        type: 'object',
        additionalProperties: false,
        required: ['title', 'options'],
        properties: {
          pollId: { $ref: '#/components/schemas/Id' },
          title: { type: 'string', minLength: 1, maxLength: 200 },
          options: {
            type: 'array',
            minItems: 2,
            maxItems: 64,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'label'],
              properties: {
                id: { $ref: '#/components/schemas/Id' },
                label: { type: 'string', minLength: 1, maxLength: 200 },
              },
            },
          },
          opensAt: { type: 'string', format: 'date-time', description: 'Default: now.' },
          closesAt: { type: ['string', 'null'], format: 'date-time' },
        },
      },
      Poll: {
        type: 'object',
        required: ['pollId', 'title', 'options', 'opensAt', 'closesAt', 'status'],
        properties: {
          pollId: { $ref: '#/components/schemas/Id' },
          title: { type: 'string' },
          options: {
            type: 'array',
            items: { type: 'object', properties: { id: { type: 'string' }, label: { type: 'string' } } },
          },
          opensAt: { type: 'string', format: 'date-time' },
          closesAt: {
            type: ['string', 'null'],
            format: 'date-time',
            description: 'Effective end: min(closesAt, closed by admin).',
          },
          status: { type: 'string', enum: ['scheduled', 'open', 'closed'] },
        },
      },
      Challenge: {
        type: 'object',
        description: 'ALTCHA v1 challenge (altcha-lib): find number n <= maxnumber with SHA-256(salt + n) = challenge.',
        required: ['algorithm', 'challenge', 'maxnumber', 'salt', 'signature'],
        properties: {
          algorithm: { type: 'string', const: 'SHA-256' },
          challenge: { type: 'string' },
          maxnumber: { type: 'integer' },
          salt: { type: 'string', description: 'Carries the signed expiry (?expires=epoch seconds).' },
          signature: { type: 'string' },
        },
      },
      VoteRequest: {
        type: 'object',
        additionalProperties: false,
        required: ['optionId'],
        properties: {
          optionId: { $ref: '#/components/schemas/Id' },
          castAt: { type: ['integer', 'null'], description: 'Device clock, epoch ms (untrusted, for analysis).' },
        },
      },
      VoteAccepted: {
        type: 'object',
        required: ['voteId', 'pollId', 'optionId', 'status'],
        properties: {
          voteId: { type: 'string', format: 'uuid' },
          pollId: { type: 'string' },
          optionId: { type: 'string' },
          status: { type: 'string', const: 'accepted' },
        },
      },
      Results: {
        type: 'object',
        required: ['pollId', 'totals', 'total', 'version', 'asOf', 'final'],
        properties: {
          pollId: { type: 'string' },
          totals: { type: 'object', additionalProperties: { type: 'integer' } },
          total: { type: 'integer' },
          version: { type: 'integer', description: 'Only increases; 0 before the first tally.' },
          asOf: { type: 'string', format: 'date-time' },
          final: { type: 'boolean' },
        },
      },
      Receipt: {
        type: 'object',
        required: ['voteId', 'optionId', 'status'],
        properties: {
          voteId: { type: 'string', format: 'uuid' },
          optionId: { type: 'string' },
          status: { type: 'string', enum: ['pending', 'counted', 'rejected'] },
          reason: { type: ['string', 'null'], description: 'With rejected: duplicate, poll_closed, ...' },
        },
      },
    },
  },
  paths: {
    '/v1/polls': {
      post: {
        summary: 'Create a poll (admin)',
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/CreatePoll' } } },
        },
        responses: {
          '201': {
            description: 'Created; stored in Kafka (acks=all).',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Poll' } } },
          },
          '400': problem(['invalid_body'], 'Invalid input.'),
          '401': problem(['unauthenticated'], 'No valid token.'),
          '403': problem(['forbidden'], 'Not an admin.'),
          '409': problem(
            ['poll_exists', 'poll_limit_reached'],
            'The poll id is taken, or the deployment holds POLLS_MAX polls already (nothing was written).',
          ),
          '429': { ...problem(['rate_limited'], 'This admin created too many polls lately.'), headers: retryAfter },
          '503': { ...problem(['unavailable'], 'Kafka did not take the poll.'), headers: retryAfter },
        },
      },
    },
    '/v1/polls/{pollId}': {
      get: {
        summary: 'A poll and its status',
        parameters: [pollIdParam],
        responses: {
          '200': {
            description: 'The poll.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Poll' } } },
          },
          '404': problem(['poll_not_found'], 'No such poll.'),
        },
      },
    },
    '/v1/polls/{pollId}/close': {
      post: {
        summary:
          'Close a poll (admin): it closes POLL_CLOSE_LEAD_MS (1 s) after the request, so every instance knows first; idempotent, the first close time stands (closesAt in the answer)',
        security: [{ bearer: [] }],
        parameters: [pollIdParam],
        responses: {
          '200': {
            description: 'Closed.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Poll' } } },
          },
          '401': problem(['unauthenticated'], 'No valid token.'),
          '403': problem(['forbidden'], 'Not an admin.'),
          '404': problem(['poll_not_found'], 'No such poll.'),
          '503': { ...problem(['unavailable'], 'Kafka did not take the close.'), headers: retryAfter },
        },
      },
    },
    '/v1/challenge': {
      get: {
        summary: 'A signed, expiring proof-of-work challenge for this voter in this poll',
        description:
          'Bound to the token’s sub and the poll: the solution is accepted only for a vote by that voter in that poll. Difficulty rises for voters, networks and devices asking faster than a real voter would.',
        security: [{ bearer: [] }],
        parameters: [
          { name: 'pollId', in: 'query', required: true, schema: { $ref: '#/components/schemas/Id' } },
          { name: 'X-Device-Id', in: 'header', required: false, schema: { type: 'string', maxLength: 128 } },
        ],
        responses: {
          '200': {
            description: 'Solve it and send the ALTCHA payload (base64 JSON) in X-Altcha.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Challenge' } } },
          },
          '400': problem(['invalid_body'], 'pollId missing or malformed.'),
          '401': problem(['unauthenticated'], 'No valid token.'),
          '404': problem(['poll_not_found'], 'No such poll.'),
          '429': { ...problem(['rate_limited'], 'Too many challenges for this voter.'), headers: retryAfter },
          '503': { ...problem(['unavailable'], 'The challenge counters are unreachable.'), headers: retryAfter },
        },
      },
    },
    '/v1/token-revocations': {
      post: {
        summary: 'Revoke a token by its jti (admin), until it would age out anyway',
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['jti'],
                additionalProperties: false,
                properties: { jti: { type: 'string', minLength: 1, maxLength: 128 } },
              },
            },
          },
        },
        responses: {
          '201': {
            description: 'Revoked: every request with this jti is 401 until revokedUntil.',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['jti', 'revokedUntil'],
                  properties: { jti: { type: 'string' }, revokedUntil: { type: 'string', format: 'date-time' } },
                },
              },
            },
          },
          '400': problem(['invalid_body'], 'jti missing or malformed.'),
          '401': problem(['unauthenticated'], 'No valid token.'),
          '403': problem(['forbidden'], 'Not an admin.'),
          '409': problem(
            ['revocation_list_full'],
            'TOKEN_REVOCATIONS_MAX live entries: rotate the signing key instead.',
          ),
          '503': { ...problem(['unavailable'], 'Redis is unreachable.'), headers: retryAfter },
        },
      },
    },
    '/v1/polls/{pollId}/votes': {
      post: {
        summary: 'Cast a vote',
        security: [{ bearer: [] }],
        parameters: [
          pollIdParam,
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: true,
            schema: { type: 'string', pattern: '^[\\x21-\\x7e]{8,128}$' },
          },
          {
            name: 'X-Altcha',
            in: 'header',
            required: false,
            description: 'Solved challenge (required by the default policy).',
            schema: { type: 'string' },
          },
          { name: 'X-Device-Id', in: 'header', required: false, schema: { type: 'string', maxLength: 128 } },
          {
            name: 'X-Votestream-Attestation',
            in: 'header',
            required: false,
            description:
              'The app’s attestation token (Play Integrity, App Attest), recorded with the vote for checking later; not verified here.',
            schema: { type: 'string', maxLength: 8192, pattern: '^[A-Za-z0-9+/=_.-]+$' },
          },
          {
            name: 'X-Votestream-Client',
            in: 'header',
            required: false,
            description: 'votestream-sdk/<version>, sent by the SDK (used by the edge’s bot rules).',
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/VoteRequest' } } },
        },
        responses: {
          '202': {
            description:
              'Kafka acknowledged the vote (acks=all). The same Idempotency-Key with the same body returns this answer again.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/VoteAccepted' } } },
          },
          '400': problem(
            ['invalid_body', 'unknown_option'],
            'Invalid input (also a missing or malformed Idempotency-Key, an oversized body).',
          ),
          '401': problem(['unauthenticated'], 'No valid token.'),
          '403': problem(
            ['challenge_required', 'challenge_failed'],
            'Proof of work missing, invalid, expired or replayed.',
          ),
          '404': problem(['poll_not_found'], 'No such poll.'),
          '409': problem(
            ['already_voted', 'poll_not_open', 'poll_closed'],
            'The vote conflicts with the poll or an earlier vote (already_voted carries voteId).',
          ),
          '422': problem(['idempotency_key_reused'], 'Same Idempotency-Key, different request.'),
          '429': { ...problem(['rate_limited'], 'Too many requests.'), headers: retryAfter },
          '503': {
            ...problem(['unavailable'], 'Kafka (or the guard store) cannot take the vote; nothing was acknowledged.'),
            headers: retryAfter,
          },
        },
      },
    },
    '/v1/polls/{pollId}/results': {
      get: {
        summary: 'Latest results (read side)',
        parameters: [pollIdParam],
        responses: {
          '200': {
            description: 'Results.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Results' } } },
          },
          '404': problem(['poll_not_found'], 'No such poll.'),
          '503': { ...problem(['unavailable'], 'The read side is unreachable.'), headers: retryAfter },
        },
      },
    },
    '/v1/polls/{pollId}/votes/me': {
      get: {
        summary: 'The caller’s ballot receipt',
        security: [{ bearer: [] }],
        parameters: [pollIdParam],
        responses: {
          '200': {
            description: 'Receipt.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Receipt' } } },
          },
          '401': problem(['unauthenticated'], 'No valid token.'),
          '404': problem(['no_vote', 'poll_not_found'], 'No vote by this voter, or no such poll.'),
        },
      },
    },
    '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'Alive.' } } } },
    '/readyz': {
      get: {
        summary: 'Readiness: catalog caught up, Kafka and Redis reachable, not shutting down',
        responses: { '200': { description: 'Ready.' }, '503': { description: 'Not ready.' } },
      },
    },
  },
} as const;
