export * from './process.ts';
export * from './system.ts';
