/**
 * The peers the fan-out benchmark measures beside the relay, each as one server
 * process on loopback: node-media-server 4 (the package this project ingests RTMP
 * with; HTTP-FLV playback) and nginx with Debian's libnginx-mod-rtmp (RTMP play),
 * one worker, no master, so that one PID carries all of its work.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../../test/helpers/ports.ts';

export interface PeerServer {
  name: string;
  /** The process doing the work (its CPU and memory are measured). */
  pid: number;
  publishUrl: string;
  playUrl: string;
  stop(): Promise<void>;
}

const NGINX_RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

function child(cmd: string, args: string[], dir: string, env: NodeJS.ProcessEnv = process.env) {
  const proc: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    output: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const listening = (port: number) =>
  fetch(`http://127.0.0.1:${port}/`).then(
    () => true,
    () => false,
  );
const tcpOpen = async (port: number) => {
  const net = await import('node:net');
  return new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
};

/** node-media-server 4 as its own process, RTMP in and HTTP-FLV out, logging at warn (its default, debug, would tax it). */
export async function startNodeMediaServer(stream: string): Promise<PeerServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nms-'));
  const rtmpPort = await freePort();
  const httpPort = await freePort();
  const script = join(dir, 'nms.cjs');
  writeFileSync(
    script,
    `
const NodeMediaServer = require(${JSON.stringify(fileURLToPath(new URL('../../node_modules/node-media-server', import.meta.url)))});
const logger = require(${JSON.stringify(fileURLToPath(new URL('../../node_modules/node-media-server/src/core/logger.js', import.meta.url)))});
const nms = new NodeMediaServer({ bind: '127.0.0.1', rtmp: { port: ${rtmpPort} }, http: { port: ${httpPort} }, webadmin: { enable: false }, store: { path: ${JSON.stringify(join(dir, 'data'))} } }, ${JSON.stringify(join(dir, 'config.json'))});
logger.level = 'warn';
nms.run();
`,
  );
  const c = child(process.execPath, [script], dir);
  await waitFor(
    'node-media-server to listen',
    async () => {
      if (c.proc.exitCode !== null) throw new Error(`node-media-server exited: ${c.output()}`);
      return (await listening(httpPort)) && (await tcpOpen(rtmpPort));
    },
    15_000,
    100,
  );
  return {
    name: 'node-media-server 4 (HTTP-FLV)',
    pid: c.proc.pid!,
    publishUrl: `rtmp://127.0.0.1:${rtmpPort}/live/${stream}`,
    playUrl: `http://127.0.0.1:${httpPort}/live/${stream}.flv`,
    stop: () => c.stop(),
  };
}

/** nginx + nginx-rtmp, one process (master_process off), RTMP in and out; `directives` go into its application (e.g. `record all; ...`). */
export async function startNginxRtmp(stream: string, directives = ''): Promise<PeerServer> {
  if (!existsSync(NGINX_RTMP_MODULE)) throw new Error(`${NGINX_RTMP_MODULE} is missing: apt-get install nginx-light libnginx-mod-rtmp`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `
load_module ${NGINX_RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16000; }
rtmp {
  server {
    listen 127.0.0.1:${port};
    chunk_size 4096;
    application live { live on; ${directives} }
  }
}
`,
  );
  const c = child('nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', join(dir, 'nginx.conf')], dir);
  await waitFor(
    'nginx-rtmp to listen',
    async () => {
      if (c.proc.exitCode !== null) throw new Error(`nginx exited: ${c.output()}`);
      return tcpOpen(port);
    },
    15_000,
    100,
  );
  return {
    name: 'nginx-rtmp (RTMP)',
    pid: c.proc.pid!,
    publishUrl: `rtmp://127.0.0.1:${port}/live/${stream}`,
    playUrl: `rtmp://127.0.0.1:${port}/live/${stream}`,
    stop: () => c.stop(),
  };
}

/**
 * nginx-rtmp making HLS (MPEG-TS segments of the stream's GOP, as the classic HLS
 * setup does) into a tmpfs folder, and a second nginx, one worker, serving that
 * folder over HTTP: `pid` is the serving one, whose CPU the HLS benchmark measures.
 * The files live in memory (tmpfs), as the relay's parts do.
 */
export async function startNginxHls(stream: string): Promise<PeerServer & { segmenterPid: number; folder: string }> {
  if (!existsSync(NGINX_RTMP_MODULE)) throw new Error(`${NGINX_RTMP_MODULE} is missing: apt-get install nginx-light libnginx-mod-rtmp`);
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'bench-nginx-hls-'));
  const rtmpPort = await freePort();
  const httpPort = await freePort();
  const common = (name: string) => `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log warn;
events { worker_connections 16000; }`;
  writeFileSync(
    join(dir, 'rtmp.conf'),
    `load_module ${NGINX_RTMP_MODULE};
${common('rtmp')}
rtmp {
  server {
    listen 127.0.0.1:${rtmpPort};
    chunk_size 4096;
    application live { live on; hls on; hls_path ${dir}/hls; hls_fragment 1s; hls_playlist_length 8s; hls_cleanup on; }
  }
}
`,
  );
  writeFileSync(
    join(dir, 'http.conf'),
    `${common('http')}
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:${httpPort};
    root ${dir};
    location /hls/ { add_header Cache-Control no-cache; }
  }
}
`,
  );
  const segmenter = child('nginx', ['-p', dir, '-e', `${dir}/rtmp-error.log`, '-c', join(dir, 'rtmp.conf')], dir);
  const server = child('nginx', ['-p', dir, '-e', `${dir}/http-error.log`, '-c', join(dir, 'http.conf')], dir);
  await waitFor(
    'nginx-rtmp and nginx to listen',
    async () => {
      if (segmenter.proc.exitCode !== null) throw new Error(`nginx-rtmp exited: ${segmenter.output()}`);
      if (server.proc.exitCode !== null) throw new Error(`nginx exited: ${server.output()}`);
      return (await tcpOpen(rtmpPort)) && (await tcpOpen(httpPort));
    },
    15_000,
    100,
  );
  return {
    name: 'nginx 1.22 serving nginx-rtmp HLS files (tmpfs)',
    pid: server.proc.pid!,
    segmenterPid: segmenter.proc.pid!,
    folder: join(dir, 'hls'),
    publishUrl: `rtmp://127.0.0.1:${rtmpPort}/live/${stream}`,
    playUrl: `http://127.0.0.1:${httpPort}/hls/${stream}.m3u8`,
    async stop() {
      await server.stop();
      await segmenter.stop();
    },
  };
}
