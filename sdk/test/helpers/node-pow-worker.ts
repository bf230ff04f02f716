/**
 * Runs sdk/src/pow-worker.ts inside a Node worker_threads Worker, by giving it the two Web Worker globals it uses
 * (addEventListener('message') and postMessage). Browsers provide these natively; this is only the Node host.
 */
import { parentPort } from 'node:worker_threads';

if (!parentPort) throw new Error('node-pow-worker must run in a worker thread');
const port = parentPort;
const scope = globalThis as unknown as {
  addEventListener: (type: 'message', listener: (event: { data: unknown }) => void) => void;
  postMessage: (message: unknown) => void;
};
scope.addEventListener = (_type, listener) => {
  port.on('message', (data: unknown) => listener({ data }));
};
scope.postMessage = (message) => port.postMessage(message);
await import('../../src/pow-worker.ts');
