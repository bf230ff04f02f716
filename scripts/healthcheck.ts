// The image's HEALTHCHECK (Docker / compose; Kubernetes uses its own probes): GET HEALTHCHECK_URL (default
// ingest's liveness, http://127.0.0.1:8080/healthz), exit 0 on a 2xx answer within 3 s, else 1.
// Plain node, no shell tools: the slim runtime image has no curl.
const url = process.env.HEALTHCHECK_URL ?? 'http://127.0.0.1:8080/healthz';
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
} catch (err) {
  console.error(`healthcheck ${url}: ${(err as Error).message}`);
  process.exit(1);
}
