export * from './assert.ts';
export * from './config.ts';
export * from './cql.ts';
export * from './kafka.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './shutdown.ts';
export * from './topics.ts';
