/**
 * Web Worker entry for `createWorkerSolver`: solves one challenge per `solve` message off the UI thread and posts
 * progress, then the solution (or why it could not). Load it as a module worker:
 *   new Worker(new URL('@votestream/sdk/pow-worker', import.meta.url), { type: 'module' })
 */
import { handlePowWorkerRequest, type PowWorkerReply, type PowWorkerRequest } from './pow.ts';

interface WorkerScope {
  postMessage(message: PowWorkerReply): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

const scope = globalThis as unknown as WorkerScope;
scope.addEventListener('message', (event) => {
  const request = event.data as PowWorkerRequest;
  if (request?.type === 'solve') void handlePowWorkerRequest(request, (m) => scope.postMessage(m));
});
