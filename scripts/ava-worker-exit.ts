// Loaded by AVA in every test worker (ava.require in package.json; a .ts file so AVA imports it as ESM). Once AVA has reported a file's results with no
// uncaught exception or unhandled rejection, the worker process ends, as AVA's documentation recommends for code
// that leaves a handle behind. Without it a worker can wait forever: ingest/test/outage.test.ts sometimes finished
// all its tests and stayed alive on Node 20 with only a ref'd timer count left (no Timeout object alive), and a
// CI run would hang until its 90-minute limit. What was still open is printed, so such leaks stay visible.
import { registerCompletionHandler } from 'ava';

registerCompletionHandler(() => {
  const open = process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
  if (open.length > 0) process.stderr.write(`test worker ends with resources still open: ${open.join(', ')}\n`);
  process.exit();
});
