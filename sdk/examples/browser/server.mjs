// Serves this example and the installed packages (node_modules) on PORT, and forwards /v1/* to the vote API
// at API_URL, so page and API share one origin as they do behind the production load balancer.
//   npm install @votestream/sdk && API_URL=http://127.0.0.1:8080 PORT=5173 node server.mjs
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';

const root = resolve(process.env.ROOT ?? '.');
const apiUrl = process.env.API_URL ?? 'http://127.0.0.1:8080';
const port = Number(process.env.PORT ?? 5173);
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' };
const bodyBytesMax = 16 * 1024;

async function forward(req, res) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > bodyBytesMax) return void res.writeHead(413).end();
    chunks.push(chunk);
  }
  const headers = { ...req.headers };
  delete headers.host;
  delete headers.connection;
  const upstream = await fetch(new URL(req.url, apiUrl), {
    method: req.method,
    headers,
    body: req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks),
    signal: AbortSignal.timeout(30_000),
  });
  const answer = Object.fromEntries(upstream.headers);
  // fetch has already decoded the body: its length and encoding are ours to set.
  delete answer['content-encoding'];
  delete answer['content-length'];
  res.writeHead(upstream.status, answer);
  res.end(Buffer.from(await upstream.arrayBuffer()));
}

createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path.startsWith('/v1/')) {
    forward(req, res).catch(() => res.writeHead(502).end());
    return;
  }
  const file = normalize(join(root, path === '/' ? 'index.html' : path));
  if (!file.startsWith(root) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
}).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`));
