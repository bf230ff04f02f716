import type { Logger } from './logger.ts';

export type Closer = () => Promise<void>;

/**
 * Graceful shutdown: on SIGTERM/SIGINT run the closers in order (stop taking work, flush, disconnect),
 * each bounded by `closerTimeoutMs`, then exit. A second signal exits at once.
 */
export function onShutdown(logger: Logger, closers: Closer[], closerTimeoutMs = 15_000): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    let code = 0;
    for (const close of closers) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          close(),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`closer timed out after ${closerTimeoutMs} ms`)),
              closerTimeoutMs,
            );
          }),
        ]);
      } catch (err) {
        code = 1;
        logger.error({ err }, 'error while shutting down');
      } finally {
        clearTimeout(timer);
      }
    }
    logger.info({ code }, 'stopped');
    process.exit(code);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
