import { type Logger, pino } from 'pino';

export type { Logger };

/** JSON logs to stdout (pino: asynchronous-friendly, no work when a level is off). */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { service: name }, timestamp: pino.stdTimeFunctions.isoTime });
}
