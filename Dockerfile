# One runtime image for both roles (and the all-in-one mode with NATS_URL set):
#   docker build -t relay .
#   docker run -e NATS_URL=nats://nats:4222 -e RELAY_NATS_AUTH_TOKEN=... -e RELAY_ADMIN_TOKEN=... -e RELAY_STREAMS='[...]' relay origin
#   docker run -e NATS_URL=nats://nats:4222 -e RELAY_NATS_AUTH_TOKEN=... -e RELAY_ADMIN_TOKEN=... -e RELAY_STREAMS='[...]' relay edge
# NODE_ENV=production puts the relay in production mode: empty or example secrets stop start-up.

# ---- the mediasoup worker (C++), built from Debian's packages with the relay's patches, as scripts/start does
FROM node:20-bookworm-slim AS worker
WORKDIR /app
COPY package.json ./
COPY scripts/lib/mediasoup-worker.sh scripts/lib/
COPY scripts/mediasoup-worker scripts/mediasoup-worker
RUN apt-get update \
 && bash -c '. scripts/lib/mediasoup-worker.sh && ensure_mediasoup_worker' \
 && rm -rf /var/lib/apt/lists/*

# ---- dependencies: production packages only, installed from the lock file (mediasoup's postinstall
# neither downloads nor builds a worker: MEDIASOUP_WORKER_BIN is set)
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN MEDIASOUP_WORKER_BIN=/app/.cache npm ci --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime: Node 20, ffmpeg (transcoding), the mediasoup worker and its libraries, the relay, a non-root user
FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini libssl3 libuv1 libsrtp2-1 libusrsctp2 libabsl20220623 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    RELAY_DATA_DIR=/data \
    RELAY_LOG_PRETTY=false
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY config ./config
COPY server ./server
COPY edge ./edge
COPY recorder ./recorder
COPY node ./node
# The worker in the project's cache, found by its key (version, machine, the recipe's hash).
COPY scripts/mediasoup-worker ./scripts/mediasoup-worker
COPY --from=worker /app/.cache ./.cache
RUN mkdir -p /data && chown node:node /data
USER node
# RTMP, HTTP (watch page, WebSocket, WHIP/WHEP, /metrics, /admin), WebRTC media: WHIP on werift (set
# RELAY_WEBRTC_PORT_MIN/MAX to this range and RELAY_WEBRTC_ANNOUNCED_ADDRESSES to the host's address),
# WHEP on mediasoup (RELAY_WEBRTC_SERVER_PORT=40100: worker i listens on 40100+i, UDP and TCP).
EXPOSE 1935 8890/udp 8080 40000-40099/udp 40100-40115/udp 40100-40115/tcp
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.RELAY_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# tini forwards SIGTERM to node, which drains (edges) or ends its streams cleanly (origins).
ENTRYPOINT ["tini", "--", "node", "--import", "tsx", "node/cli.ts"]
CMD ["all"]
