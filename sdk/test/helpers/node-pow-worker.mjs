// Worker-thread entry: Node cannot start a worker from a .ts file directly, so load it through tsx.
import { tsImport } from 'tsx/esm/api';

await tsImport('./node-pow-worker.ts', import.meta.url);
