# One image for the three votestream deployables (ingest, stream, projections) and the one-shot init steps;
# the command picks which. Node 24 LTS. Built once: compose/docker-compose.yml and the Helm chart
# (deploy/helm/votestream) run this image with different commands.
#   docker build -t votestream:dev .
# What each stage does is proven without Docker by tests/system/from-build.test.ts (same staging script, same
# `npm ci --omit=dev`, plain node, non-root, read-only tree, unusable TMPDIR) and tests/system/compose.test.ts.

# --- build: all dependencies, compile TypeScript to dist/ (npm run build), stage the runtime tree ---
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY . .
# Install scripts stay off (every dependency ships its binaries inside npm), as in scripts/test.
# scripts/patch-kafkajs.mjs mends KafkaJS's read_committed filter in node_modules (createKafka refuses to run without).
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && node scripts/patch-kafkajs.mjs \
 && npm run build \
 && node --import tsx scripts/stage-runtime.ts /stage

# --- runtime: production dependencies only, the build output, no TypeScript tooling, no test packages ---
FROM node:24-bookworm-slim AS runtime
# tini as PID 1: forwards SIGTERM to node (graceful drain) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /stage/ ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && node scripts/patch-kafkajs.mjs && npm cache clean --force
# No local-stack defaults (127.0.0.1 addresses, .stack/secrets) in a container: a missing setting fails at start
# with a ConfigError naming it. Secrets are files in SECRETS_DIR (a mounted volume), one per secret.
ENV NODE_ENV=production \
    LOCAL_STACK_DEFAULTS=false \
    SECRETS_DIR=/secrets
# An unprivileged uid above 10000 (no clash with host users); the code writes nowhere (readOnlyRootFilesystem).
USER 10001:10001
EXPOSE 8080 8090 9470 9471 9472
# Liveness of the service this container runs: HEALTHCHECK_URL (default ingest's /healthz on 8080).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["node", "dist/healthcheck.js"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "ingest/dist/main.js"]
