# One image for the three votestream deployables (ingest, stream, projections); the command picks which.
# Production runs a supported Node.js LTS (24); the code also runs on Node 20.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY libs ./libs
COPY schemas ./schemas
COPY ingest ./ingest
COPY stream ./stream
COPY projections ./projections
COPY sdk ./sdk
COPY bench/package.json ./bench/package.json
COPY tests/package.json ./tests/package.json
COPY migrations ./migrations
COPY scripts ./scripts
RUN npm ci --omit=dev --no-audit --no-fund
USER node
