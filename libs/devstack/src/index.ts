export * from './cluster.ts';
export * from './fleet.ts';
export * from './process.ts';
export * from './recount.ts';
export * from './system.ts';
