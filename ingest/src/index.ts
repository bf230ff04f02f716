export { networkPrefixOf } from './abuse/rate-limit.ts';
export { type IngestConfig, loadIngestConfig } from './config.ts';
export { openApiDocument } from './http/openapi.ts';
export { type Problem, type ProblemCode, problem, problemCodes } from './http/problem.ts';
export { type IngestDeps, type IngestHandle, ingestStopBoundMs, startIngest } from './service.ts';
export { mintToken } from './tools/tokens-dev.ts';
export { voteIdOf } from './votes/vote-id.ts';
