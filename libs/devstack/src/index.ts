export * from './process.ts';
export * from './recount.ts';
export * from './system.ts';
