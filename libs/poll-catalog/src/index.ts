export * from './reader.ts';
export * from './rules.ts';
