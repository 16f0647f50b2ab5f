import { z } from 'zod';
import { isStreamName } from '../media/stream-name.ts';
import { parseForwardUrl } from './forward-url.ts';

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

/** A signing secret: long enough that guessing it is hopeless, printable so it fits an environment variable. */
export const signingSecret = z
  .string()
  .regex(/^[\x21-\x7e]{32,256}$/, 'signing secrets are 32-256 printable ASCII characters without spaces (e.g. openssl rand -base64 33)');

export const streamEntry = z
  .object({
    name: z.string().refine(isStreamName, 'stream names are 1-64 characters of A-Z, a-z, 0-9, _ and -').describe('Public stream name, used in watch URLs.'),
    key: z
      .string()
      .regex(/^[A-Za-z0-9_-]{16,128}$/, 'stream keys are 16-128 characters of A-Z, a-z, 0-9, _ and -')
      .describe('Secret publish key (the RTMP stream key).'),
    transcode: z.boolean().optional().describe('false: passthrough only for this stream, whatever transcode.enabled says.'),
    dvrWindowS: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("This stream's HLS DVR window (s), whatever hls.dvrWindowS says; 0: off. Read by edges (they make the playlists)."),
    record: z.boolean().optional().describe('Record this stream (true) or not (false), whatever recording.enabled says. Read by recorders.'),
    busMaxAgeSeconds: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "How long the bus keeps this stream's frames, when less than bus.maxAgeSeconds (what its shard keeps every stream): its origin trims older ones, from a keyframe. More is capped at bus.maxAgeSeconds. Read by origins.",
      ),
    forward: z
      .array(
        z.string().superRefine((text, ctx) => {
          const target = parseForwardUrl(text);
          if (typeof target === 'string') ctx.addIssue({ code: z.ZodIssueCode.custom, message: `forward URL: ${target}` });
        }),
      )
      .max(8)
      .optional()
      .describe(
        'Other servers this stream is forwarded to (restreamed) while it is live, copied as it is (no re-encoding): rtmp://host/app/key, rtmps://..., srt://host:port?streamid=... Read by origins.',
      ),
  })
  .strict();

/**
 * The one configuration schema. Every default lives in `config/default.json`;
 * every key says here what reads it. Objects are strict, so a misspelt key stops
 * start-up with its name.
 */
export const configSchema = z
  .object({
    mode: z
      .enum(['auto', 'development', 'production'])
      .describe(
        'production: start-up refuses empty or example secrets (admin token, stream keys, signing secrets, NATS credentials). auto: production when NODE_ENV=production (the container image sets it), else development.',
      ),
    dataDir: z.string().min(1).describe('Folder for local state: the embedded nats-server store, generated stream keys.'),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).describe('Log level of every module.'),
        pretty: z
          .enum(['auto', 'true', 'false'])
          .describe('Readable lines instead of JSON. auto: readable lines in the all-in-one mode, JSON for the origin and edge roles (production).'),
      })
      .strict(),
    nats: z
      .object({
        url: z
          .string()
          .describe(
            'NATS server(s) to use, comma-separated. Empty: the all-in-one mode starts its own nats-server; origin and edge roles require it. NATS_URL sets it too.',
          ),
        embeddedPort: port.describe('Client port of the nats-server started by the all-in-one mode (0 picks a free one).'),
        connectTimeoutMs: positiveInt.describe('How long start-up waits for NATS before giving up.'),
        auth: z
          .object({
            user: z.string().describe('User name for NATS user/password authentication (with password). Empty: none.'),
            password: z.string().describe('Password for NATS user/password authentication.'),
            token: z.string().describe('NATS token authentication. Empty: none.'),
            nkeySeedFile: z.string().describe('File holding an NKey seed (SU...) for NATS nkey authentication. Empty: none.'),
            credsFile: z.string().describe('NATS credentials file (a user JWT and its NKey seed, from nsc) for decentralized auth. Empty: none.'),
          })
          .strict()
          .describe('How the relay authenticates to an external NATS: at most one of user/password, token, nkey seed file or creds file.')
          .refine(
            (a) => [a.user || a.password, a.token, a.nkeySeedFile, a.credsFile].filter(Boolean).length <= 1,
            'set only one of user/password, token, nkeySeedFile and credsFile',
          )
          .refine((a) => !a.password || !!a.user, 'password needs user'),
        tls: z
          .object({
            caFile: z
              .string()
              .describe("CA certificate (PEM) that signed the NATS servers' certificates; setting any TLS file turns TLS on. Empty: the system CAs."),
            certFile: z.string().describe('Client certificate (PEM) for NATS servers that verify clients (with keyFile).'),
            keyFile: z.string().describe('Private key (PEM) of the client certificate.'),
          })
          .strict()
          .refine((t) => !t.certFile === !t.keyFile, 'certFile and keyFile go together'),
      })
      .strict(),
    bus: z
      .object({
        subjectPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/)
          .describe('First subject tokens of every frame message: <prefix>.<stream>.<rendition>.<kind>.'),
        streamName: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .describe('Name of the JetStream stream holding frames; created or updated at start.'),
        shards: z
          .number()
          .int()
          .min(1)
          .max(256)
          .describe(
            "JetStream streams the frames spread over, each stream's frames in one of them (by its name's hash); each has its own leader, so in a NATS cluster the work spreads over the nodes. 1: one stream named streamName (binding <subjectPrefix>.>); more: streamName_0..N-1 (binding <subjectPrefix>_s<i>.>). Every node must use the same value. A few per NATS node (6 for 3 nodes).",
          ),
        replicas: z.number().int().min(1).max(5).describe('JetStream replicas of each frame stream (3 in a 3-node cluster).'),
        balanceLeadersMs: z
          .number()
          .int()
          .min(0)
          .describe(
            "How often an origin checks that the shards' leaders are spread over the NATS nodes, and asks one shard to change leader if not (with more than one shard and replica); 0: never.",
          ),
        copySweepMs: z
          .number()
          .int()
          .min(0)
          .describe(
            "With regions: how often an edge removes its region's stream copies that no consumer has read for two sweeps and at least 10 s (a release missed while NATS was away, an edge killed); 0: never.",
          ),
        maxAgeSeconds: positiveInt.describe('How long frames are kept: a few GOPs, so a late edge can start at the last keyframe.'),
        storage: z
          .enum(['auto', 'file', 'memory'])
          .describe(
            "Where JetStream keeps frames. file: a restarted nats-server still has them, and viewers lose no frame across a restart within maxAgeSeconds. memory: a lower p99 on a busy bus, but a single nats-server's restart loses the stream (a cluster with replicas 3 keeps it through one node's restart). auto (the default): file with replicas 1, memory with more; an existing frame stream keeps its storage.",
          ),
        maxBytes: positiveInt.describe(
          'Size cap of the frames on the bus, on disk or in memory, shared equally by the shards (oldest frames are dropped first).',
        ),
        publishWindow: positiveInt.describe(
          "Messages in flight (published, not yet acknowledged) per publishing origin and bus shard before ingest pushes back on that shard's publishers (a shard whose leader is gone pauses only its own streams).",
        ),
        publishTimeoutMs: positiveInt.describe('How long the origin waits for JetStream to acknowledge a frame before counting it as failed.'),
      })
      .strict(),
    webrtc: z
      .object({
        enabled: z.boolean().describe('WHIP ingest on origins (POST /whip/<stream>) and WHEP playback on edges (POST /whep/<stream>).'),
        engine: z
          .enum(['auto', 'mediasoup', 'werift'])
          .describe(
            'What serves WHEP viewers: "mediasoup" (C++ workers, SFU-class: SRTP, NACK/RTX, congestion control in the worker), "werift" (in Node), or "auto": mediasoup where its worker is installed (scripts/start builds it), else werift. WHIP ingest: see ingestEngine.',
          ),
        ingestEngine: z
          .enum(['auto', 'mediasoup', 'werift'])
          .describe(
            'What takes WHIP publishers on origins: "mediasoup" (the same C++ workers: SRTP, NACK, transport-cc feedback so that the publisher\'s own bandwidth estimate works), "werift" (in Node), or "auto": mediasoup where its worker is installed, else werift.',
          ),
        workers: z.number().int().min(0).max(256).describe('mediasoup worker processes: 0 for one per core.'),
        serverPort: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .describe(
            "UDP and TCP port of mediasoup worker i's WebRtcServer is serverPort + i: every viewer of a worker shares it (open these in a firewall). 0: a port from portMin-portMax, else any free one.",
          ),
        portMin: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .describe('Lowest UDP port for WebRTC media (0 with portMax 0: any free port). Each peer connection takes one or two.'),
        portMax: z.number().int().min(0).max(65535).describe('Highest UDP port for WebRTC media.'),
        announcedAddresses: z.array(z.string()).describe('Extra addresses to offer as ICE host candidates: the public address of a server behind NAT.'),
        iceServers: z
          .array(z.object({ urls: z.string(), username: z.string().optional(), credential: z.string().optional() }).strict())
          .describe("STUN/TURN servers for the relay's own candidates; none needed on a reachable host."),
        maxSdpBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .describe('Largest SDP offer accepted; a larger body gets 413 BODY_TOO_LARGE.'),
        keyframeRequestMinMs: z.number().int().min(100).describe('Shortest time between two keyframe requests (PLI) sent to a WHIP publisher.'),
        maxKeyframeIntervalMs: z
          .number()
          .int()
          .min(0)
          .describe(
            'A WHIP publisher that has sent no keyframe for this long is asked for one (PLI): a browser encoder makes them only when asked, and WebSocket and HLS viewers start at keyframes, and segments end at them. 0: never asked unless a WebRTC viewer waits.',
          ),
      })
      .strict()
      .refine(
        (w) => (w.portMin === 0) === (w.portMax === 0) && w.portMin <= w.portMax && (w.portMin === 0 || w.portMax > w.portMin),
        'webrtc.portMin and portMax: both 0, or a range with portMax above portMin',
      ),
    ingest: z
      .object({
        takeover: z
          .boolean()
          .describe(
            'A publisher with the valid key of a live stream takes it over, on any origin (the current publisher is disconnected with PUBLISHER_REPLACED): what an encoder reconnecting after a network blip needs. false: it is refused with STREAM_ALREADY_PUBLISHING while the stream is live.',
          ),
      })
      .strict(),
    rtmp: z
      .object({
        host: z.string().describe('Address the RTMP listener binds to.'),
        port: port.describe('RTMP listener port (OBS: rtmp://<host>:<port>/<app>).'),
        app: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/)
          .describe('RTMP application name publishers use; the stream key is the RTMP stream name.'),
        handshakeTimeoutMs: positiveInt.describe('A connection that has not started publishing within this time is closed.'),
        idleTimeoutMs: positiveInt.describe('A publishing connection that sends nothing for this long is closed.'),
        mediaTimeoutMs: positiveInt.describe(
          'A publisher that sends no audio or video for this long is gone (frozen, or its network died without closing the connection): it is disconnected with PUBLISHER_SILENT and its stream ends for viewers.',
        ),
        maxConnections: positiveInt.describe('RTMP connections accepted at once; more are refused.'),
        maxConnectionsPerAddress: z
          .number()
          .int()
          .min(0)
          .describe('RTMP connections one remote address may hold at once; more are refused (RTMP_TOO_MANY_CONNECTIONS). 0: no limit.'),
        maxMessageBytes: positiveInt.describe('Largest RTMP message accepted; larger ones close the connection.'),
      })
      .strict(),
    rtmps: z
      .object({
        host: z.string().describe('Address the RTMPS (RTMP over TLS) listener binds to.'),
        port: port.describe(
          'RTMPS listener port (OBS: rtmps://<host>:<port>/<app>). On only when certFile and keyFile are set; it keeps every rtmp.* limit and timeout.',
        ),
        certFile: z
          .string()
          .describe(
            "PEM certificate chain for RTMPS (e.g. a Let's Encrypt fullchain.pem); empty: no RTMPS. Reloaded when the file changes, without a restart.",
          ),
        keyFile: z.string().describe('PEM private key of certFile.'),
        certCheckMs: positiveInt.describe('How often the certificate and key files are checked for a change (renewals are picked up without a restart).'),
      })
      .strict()
      .refine((r) => (r.certFile === '') === (r.keyFile === ''), 'set both rtmps.certFile and rtmps.keyFile, or neither'),
    srt: z
      .object({
        enabled: z.boolean().describe('SRT ingest on origins: a UDP listener taking MPEG-TS from encoders (OBS, ffmpeg, hardware) in SRT live mode.'),
        host: z.string().describe('Address the SRT listener (UDP) binds to.'),
        port: port.describe('SRT listener port, UDP (OBS: srt://<host>:<port>?streamid=<key>).'),
        latencyMs: z
          .number()
          .int()
          .min(20)
          .max(8000)
          .describe(
            "SRT receive latency (ms): how long a packet may take, retransmissions included, before the relay gives it up; every frame reaches viewers this much later. The caller's own latency wins when larger. 4 x the round trip on lossy links.",
          ),
        passphrase: z
          .string()
          .refine((p) => p === '' || (p.length >= 10 && p.length <= 79), 'SRT passphrases are 10 to 79 characters')
          .describe(
            'Encryption (AES-128/192/256, the caller chooses) with this passphrase; callers without it, or with another, are refused. Empty: no encryption.',
          ),
        idleTimeoutMs: positiveInt.describe('A caller that sends nothing (not even a keepalive) for this long is gone: its stream ends.'),
        mediaTimeoutMs: positiveInt.describe('A caller that sends no audio or video for this long is disconnected with PUBLISHER_SILENT.'),
        maxConnections: positiveInt.describe('SRT callers accepted at once; more are refused (SRT_TOO_MANY_CONNECTIONS).'),
        maxConnectionsPerAddress: z
          .number()
          .int()
          .min(0)
          .describe('SRT callers one remote address may hold at once; more are refused (TOO_MANY_CONNECTIONS). 0: no limit.'),
      })
      .strict(),
    http: z
      .object({
        host: z.string().describe('Address the HTTP listener (watch page, WebSocket, health) binds to.'),
        port: port.describe('HTTP listener port.'),
        publicUrl: z.string().describe('Base URL printed for viewers, e.g. https://live.example.com; empty: derived from the host name and port.'),
        maxConnectionsPerAddress: z
          .number()
          .int()
          .min(0)
          .describe(
            'HTTP and WebSocket connections one remote address may hold at once; more get 429 TOO_MANY_CONNECTIONS and are closed. Many viewers behind one NAT share an address: keep it well above one household. 0: no limit.',
          ),
        headersTimeoutMs: z
          .number()
          .int()
          .min(1000)
          .describe('A client must send its whole request head within this (slow-header attacks); the connection is closed otherwise.'),
        requestTimeoutMs: z
          .number()
          .int()
          .min(1000)
          .describe('A client must send its whole request, body included, within this. WebSocket viewers are not affected once upgraded.'),
      })
      .strict(),
    edge: z
      .object({
        watchdogIntervalMs: positiveInt.describe('How often the edge checks that each stream consumer is still receiving while its stream is live.'),
        playerProtocol: z
          .enum(['mse', 'webrtc', 'auto', 'hls'])
          .describe(
            'What the watch page plays by default (a viewer overrides it with ?protocol=): "mse" (WebSocket fMP4, adaptive bitrate, cheapest per viewer), "webrtc" (WHEP, lowest latency, MSE when it fails), "auto" (WHEP when the stream has a WebRTC rendition, else MSE), "hls" (LL-HLS with hls.js, or the browser\'s own HLS). A browser with neither MediaSource nor ManagedMediaSource plays HLS whatever is asked.',
          ),
        consumerMaxMessages: z
          .number()
          .int()
          .min(16)
          .max(10000)
          .describe(
            "Messages one stream consumer may have in flight from JetStream (a pull is refilled at half). Bounded, so that many consumers on one connection stay under the server's pending limit (see field notes).",
          ),
        renditionLingerMs: positiveInt.describe(
          "How long a stream's rendition stays open on an edge after its last viewer leaves (its bus consumer and GOP kept warm for a viewer switching or coming back).",
        ),
        gopCacheMaxBytes: positiveInt.describe('Largest GOP an edge keeps in memory for new viewers; a longer GOP is not cached past this.'),
        viewerSkipBytes: positiveInt.describe('A viewer with more than this many bytes queued skips to the next keyframe.'),
        viewerMaxLagMs: positiveInt.describe('A viewer that stays behind (skipping) for this long is disconnected.'),
        viewerMaxBytes: positiveInt.describe('A viewer with more than this many bytes queued is disconnected at once.'),
      })
      .strict(),
    hls: z
      .object({
        enabled: z.boolean().describe('LL-HLS and HLS from every edge at /hls/<stream>/index.m3u8 (hls.js, Safari, VLC, ffplay, CDNs).'),
        partTargetMs: z
          .number()
          .int()
          .min(100)
          .max(2000)
          .describe('LL-HLS part target (EXT-X-PART-INF): parts are cut no longer than this. 334 ms: ten frames at 30 fps; PART-HOLD-BACK is three of them.'),
        segmentMinMs: z
          .number()
          .int()
          .min(500)
          .describe('A segment starts at the first keyframe after this long (the ladder makes one a second; an OBS source every 2 s by default).'),
        liveSegments: z
          .number()
          .int()
          .min(3)
          .max(100)
          .describe('Segments listed in a live playlist (clients that ignore the low-latency tags start three from the end).'),
        dvrWindowS: z
          .number()
          .int()
          .min(0)
          .describe(
            'Seconds a viewer may seek back in the playlist (a DVR window), from when the edge began serving the rendition over HLS; 0: off. Per stream: streams[].dvrWindowS. Bounded in memory by maxBytesPerRendition.',
          ),
        maxBytesPerRendition: positiveInt.describe('Bytes of parts and segments an edge keeps per rendition at most, whatever the DVR window says.'),
        sessionIdleMs: positiveInt.describe(
          'An HLS client that has asked for nothing for this long no longer counts as a viewer (HLS has no connection to close).',
        ),
      })
      .strict(),
    cluster: z
      .object({
        nodeId: z
          .string()
          .regex(/^[A-Za-z0-9_-]{0,64}$/)
          .describe("This node's name in leases and the edge ring; empty: hostname-pid."),
        region: z
          .string()
          .regex(/^[a-z0-9-]{0,32}$/)
          .describe(
            "This node's region (e.g. eu-west): an edge advertises it, and a viewer routed by this node goes to an edge of the viewer's region (from regionHeader or ?region=), else of this node's region, else anywhere. Empty: no region.",
          ),
        regions: z
          .array(z.string().regex(/^[a-z0-9-]{1,32}$/))
          .describe(
            'Every region of a NATS supercluster (its clusters joined by gateways, each cluster named as its region): frames are published in their origin region, and a region copies a stream from another only while its viewers watch it. Empty: one bus, wherever its nodes are. Each node names its own in region.',
          ),
        regionHeader: z
          .string()
          .regex(/^[a-z0-9-]{1,64}$/)
          .describe('HTTP header where a load balancer or GeoDNS front says which region a viewer is in (the route API reads it).'),
        kvReplicas: z.number().int().min(1).max(5).describe('Replicas of the lease and membership KV buckets (3 in a 3-node NATS cluster).'),
        leaseBucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .describe('KV bucket of stream leases (one key per live stream, owned by one origin).'),
        leaseTtlMs: z
          .number()
          .int()
          .min(1000)
          .describe(
            "Lease lifetime: a dead origin's stream is taken over within it; the owner renews every fifth of it, stops publishing before it could expire, and so rides out NATS outages of about 0.7 x TTL (Raft elections take ~5 s).",
          ),
        edgeBucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .describe('KV bucket where edges heartbeat their address, capacity and load.'),
        edgeHeartbeatMs: z.number().int().min(100).describe('How often an edge heartbeats; other nodes poll the bucket as often.'),
        edgeTtlMs: z.number().int().min(500).describe('An edge that has not heartbeated for this long is no longer placed.'),
        nodeBucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .describe('KV bucket where every node (origin and edge) heartbeats what it runs, for the admin API and dashboard; same heartbeat and TTL as edges.'),
        edgeCapacity: positiveInt.describe('Viewers this edge takes at most (its weight on the ring).'),
        balanceFactor: z
          .number()
          .min(1)
          .max(4)
          .describe('1 + eps of consistent hashing with bounded loads: no edge takes more than this times its fair share.'),
        spillAfter: z
          .number()
          .int()
          .min(0)
          .describe('Viewers an edge always takes before a stream spills to the next edge, whatever the average (keeps quiet streams on one edge).'),
      })
      .strict()
      .refine(
        (c) => c.regions.length === 0 || c.regions.includes(c.region),
        'cluster.region must be one of cluster.regions when regions are listed (the NATS cluster this node is in)',
      ),
    auth: z
      .object({
        publishSecrets: z
          .array(signingSecret)
          .describe(
            'Secrets that sign publish keys (<stream>.<expiresAt>.<signature>): with one set, any stream name can be published with a key signed for it, as well as the static streams[].key. Several at once: rotation. RELAY_AUTH_PUBLISH_SECRETS takes JSON.',
          ),
        playbackSecrets: z
          .array(signingSecret)
          .describe(
            'Secrets that sign playback tokens (<expiresAt>.<signature>, bound to a stream). With one set, every viewer path (watch page, WebSocket, WHEP) requires a valid token; empty: playback is open.',
          ),
        keysFile: z
          .string()
          .describe(
            'JSON file of more streams (with keys), publishSecrets and playbackSecrets, re-read when it changes and on SIGHUP: keys rotate without a restart. A bad file is logged and the keys in use are kept. Empty: none.',
          ),
      })
      .strict(),
    admin: z
      .object({
        token: z
          .string()
          .refine((t) => t === '' || /^[\x21-\x7e]{16,256}$/.test(t), 'the admin token is 16-256 printable ASCII characters without spaces')
          .describe(
            'Bearer token of the admin API (/admin/api) and the dashboard (/admin). Empty: the admin API answers 503 ADMIN_DISABLED, except in the all-in-one mode, which makes one and keeps it in the data folder.',
          ),
      })
      .strict(),
    transcode: z
      .object({
        enabled: z.boolean().describe('Transcode live streams into the ladder (passthrough "source" is always there). Per stream: streams[].transcode.'),
        gopSeconds: z
          .number()
          .min(0.5)
          .max(10)
          .describe(
            'Keyframe interval of every transcoded rendition (aligned across renditions: a player switches at any of them). 1 s: a player going down on a sudden bandwidth cut finds a keyframe it can afford within the time it has (2 s froze the picture for about 1 s when the cut fell late in a GOP).',
          ),
        ladder: z
          .array(
            z
              .object({
                name: z
                  .string()
                  .regex(/^[a-z0-9_-]{1,32}$/)
                  .refine((n) => n !== 'source', 'the name "source" is the passthrough rendition'),
                height: z.number().int().min(64).max(4320),
                videoKbps: z.number().int().min(50),
                audioKbps: z.number().int().min(16),
                priority: z
                  .number()
                  .int()
                  .min(0)
                  .default(1)
                  .describe('Kept longest when ffmpeg cannot keep up: the lowest priority is shed first (ties: the tallest, the most expensive).'),
                preset: z
                  .enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo'])
                  .default('veryfast')
                  .describe('x264 preset of this rung.'),
              })
              .strict(),
          )
          .describe(
            'Renditions to make, highest first; a rung above the source height is skipped (never upscaled). The highest rung a stream gets also carries Opus audio: its WebRTC rendition.',
          ),
        opusKbps: z
          .number()
          .int()
          .min(0)
          .max(510)
          .describe("Opus audio made beside AAC on each stream's WebRTC rendition (its highest rung), kbit/s; 0 for none."),
        maxBacklogMs: z
          .number()
          .int()
          .min(200)
          .describe(
            'ffmpeg is behind when its output trails its input by more than this much media time; then the lowest-priority rung is shed (logged as TRANSCODE_BEHIND, counted) and ffmpeg restarts without it.',
          ),
        restartMinMs: positiveInt.describe('First delay before restarting an ffmpeg that failed; doubles on each failure in a row.'),
        restartMaxMs: positiveInt.describe('Longest delay between ffmpeg restarts.'),
      })
      .strict(),
    forward: z
      .object({
        restartMinMs: positiveInt.describe('First delay before forwarding again after the target refused or went away; doubles on each failure in a row.'),
        restartMaxMs: positiveInt.describe('Longest delay between tries; a forward that ran this long before failing starts again from restartMinMs.'),
        maxQueueBytes: positiveInt.describe(
          'Bytes waiting for a target that reads too slowly, beyond which frames are dropped until the next keyframe (counted).',
        ),
        timeoutMs: positiveInt.describe('A target that reads nothing for this long is given up on (then tried again).'),
        bucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .describe('NATS KV bucket of the forwards operators add at run time (the admin API), read by the origin holding each stream.'),
      })
      .strict(),
    recording: z
      .object({
        enabled: z.boolean().describe('Record every stream (a recorder records it once, whichever recorder). Per stream: streams[].record.'),
        renditions: z
          .array(z.string().min(1))
          .min(1)
          .describe('Renditions recorded: "source" (what the publisher sent, no transcoding cost), ladder names, or "*" for all.'),
        storage: z
          .enum(['directory', 'nats'])
          .describe(
            'Where recordings go: "directory" (recording.dir, a folder the recorders and edges share) or "nats" (a NATS Object Store bucket, replicated with the cluster, read by any node).',
          ),
        dir: z.string().describe('Folder of the recordings (storage "directory"); empty: <dataDir>/recordings.'),
        bucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/)
          .describe('Object Store bucket of the recordings (storage "nats").'),
        replicas: z.number().int().min(1).max(5).describe('Copies of each recording in the NATS cluster (storage "nats").'),
        segmentSeconds: z
          .number()
          .min(1)
          .max(30)
          .describe('A recording segment (a file) starts at the first keyframe after this long: what a crash can cost before the bus gives it back.'),
        mp4: z.boolean().describe('At the end, also one MP4 file with its index first (faststart), remuxed from the segments, not re-encoded.'),
        maxAgeHours: z.number().min(0).describe('Recordings older than this are deleted; 0: kept whatever their age.'),
        maxTotalBytes: z.number().int().min(0).describe('The oldest recordings are deleted while all of them take more than this; 0: no limit.'),
        webhookUrl: z
          .string()
          .describe('POSTed the recording (JSON) when one is complete, as the NATS event <bus.subjectPrefix>_events.recording is; empty: none.'),
      })
      .strict(),
    streams: z
      .array(streamEntry)
      .describe(
        'Streams and their secret publish keys. The all-in-one mode adds "demo" with a generated key. RELAY_STREAMS takes JSON. auth.keysFile can add more, and change them without a restart.',
      ),
  })
  .strict();

export type RelayConfig = z.infer<typeof configSchema>;
export type StreamEntry = RelayConfig['streams'][number];
