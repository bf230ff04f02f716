// Sample records and registry helpers shared by the schemas tests.
import { randomBytes, randomUUID } from 'node:crypto';
import type { PollEvent, RecordTypes, TallyUpdate, VoteAnalytics, VoteCast, VoteDecision } from '../src/index.ts';

export const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';

/** A subject prefix no other test run uses, so reruns start from empty subjects. */
export function uniqueSubjectPrefix(label: string): string {
  return `t-${label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}.`;
}

export function sampleVoteCast(): VoteCast {
  return {
    voteId: randomUUID(),
    pollId: 'final-2026',
    optionId: 'band-a',
    voterId: 'voter-123',
    idempotencyKey: randomUUID(),
    castAt: 1_780_000_000_000,
    receivedAt: 1_780_000_000_250,
    evidence: {
      challenge: 'SOLVED',
      challengeId: 'c0ffee',
      tokenId: 'jti-1',
      networkPrefix: '203.0.113.0/24',
      userAgent: 'votestream-sdk/1.0',
      deviceId: null,
      attestation: null,
    },
  };
}

export const samples: { [N in keyof RecordTypes]: () => RecordTypes[N] } = {
  PollEvent: (): PollEvent => ({
    eventId: randomUUID(),
    type: 'OPENED',
    occurredAt: 1_780_000_000_000,
    poll: {
      pollId: 'final-2026',
      title: 'Who wins the final?',
      options: [
        { id: 'band-a', label: 'Band A' },
        { id: 'band-b', label: 'Band B' },
      ],
      opensAt: 1_780_000_000_000,
      closesAt: 1_780_000_900_000,
      closedAt: null,
    },
  }),
  TallyUpdate: (): TallyUpdate => ({
    pollId: 'final-2026',
    source: 3,
    version: 42,
    totals: { 'band-a': 1_000_000, 'band-b': 999_999 },
    total: 1_999_999,
    lateVotes: 7,
    windows: [{ windowStart: 1_780_000_000_000, windowEnd: 1_780_000_001_000, counts: { 'band-a': 12 }, late: 1 }],
    watermark: 1_780_000_000_500,
    asOf: 1_780_000_001_100,
    final: false,
    audit: {
      heads: [{ source: 3, count: 2_000_006, head: '9f'.repeat(32) }],
      signature: null,
      keyId: null,
    },
  }),
  VoteAnalytics: (): VoteAnalytics => ({
    pollId: 'final-2026',
    voterPseudonym: 'q1w2e3r4t5y6u7i8o9p0aA',
    optionId: 'band-a',
    counted: false,
    reason: 'DUPLICATE',
    late: false,
    windowStart: 1_780_000_000_000,
    networkPrefix: '203.0.0.0/16',
    clientFamily: 'votestream-sdk/1',
    challengeSolved: true,
  }),
  VoteCast: sampleVoteCast,
  VoteDecision: (): VoteDecision => ({
    vote: sampleVoteCast(),
    outcome: 'REJECTED',
    reason: 'DUPLICATE',
    countedVoteId: randomUUID(),
    late: false,
    windowStart: 1_780_000_000_000,
    decidedAt: 1_780_000_000_300,
  }),
};

/** Plain JSON view of a decoded value (avsc decodes records as class instances). */
export function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

/** POST a schema to a subject; returns the HTTP status and body (200 = registered, 409 = incompatible). */
export async function registerRaw(subject: string, schema: unknown): Promise<{ status: number; body: string }> {
  const res = await fetch(`${registryUrl}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: JSON.stringify(schema) }),
  });
  return { status: res.status, body: await res.text() };
}

export async function setCompatibility(subject: string, level: string): Promise<void> {
  const res = await fetch(`${registryUrl}/config/${encodeURIComponent(subject)}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: level }),
  });
  if (!res.ok) throw new Error(`PUT config ${subject}: ${res.status} ${await res.text()}`);
}

export async function getCompatibility(subject: string): Promise<string> {
  const res = await fetch(`${registryUrl}/config/${encodeURIComponent(subject)}`);
  const body = (await res.json()) as { compatibilityLevel?: string };
  return body.compatibilityLevel ?? `HTTP ${res.status}`;
}
