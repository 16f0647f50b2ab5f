# One runtime image for both roles (and the all-in-one mode with NATS_URL set):
#   docker build -t relay .
#   docker run -e NATS_URL=nats://nats:4222 -e RELAY_NATS_AUTH_TOKEN=... -e RELAY_ADMIN_TOKEN=... -e RELAY_STREAMS='[...]' relay origin
#   docker run -e NATS_URL=nats://nats:4222 -e RELAY_NATS_AUTH_TOKEN=... -e RELAY_ADMIN_TOKEN=... -e RELAY_STREAMS='[...]' relay edge
# NODE_ENV=production puts the relay in production mode: empty or example secrets stop start-up.

# ---- dependencies: production packages only, installed from the lock file
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime: Node 20, ffmpeg (transcoding), the relay, a non-root user
FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
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
RUN mkdir -p /data && chown node:node /data
USER node
# RTMP, HTTP (watch page, WebSocket, WHIP/WHEP, /metrics, /admin), WebRTC media (set
# RELAY_WEBRTC_PORT_MIN/MAX to this range and RELAY_WEBRTC_ANNOUNCED_ADDRESSES to the host's address).
EXPOSE 1935 8080 40000-40099/udp
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.RELAY_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# tini forwards SIGTERM to node, which drains (edges) or ends its streams cleanly (origins).
ENTRYPOINT ["tini", "--", "node", "--import", "tsx", "node/cli.ts"]
CMD ["all"]
