export { type IngestDeps, type IngestHandle, startIngest } from './app.ts';
export { type IngestConfig, loadIngestConfig } from './config.ts';
export { problem, type Problem, type ProblemCode } from './http/problem.ts';
export { openApiDocument } from './http/openapi.ts';
export { mintToken } from './tools/tokens-dev.ts';
export { networkPrefixOf } from './abuse/rate-limit.ts';
