/**
 * The floor for any HLS server written for Node: node:http alone, no framework, serving
 * a folder of HLS files (nginx-rtmp's) from memory. Segments are read once and kept (they
 * never change under their name); playlists are read on each request (they do). The HLS
 * benchmark measures it beside nginx and the relay, with the same clients.
 *
 *   node --import tsx scripts/lib/node-static-hls.ts <folder> <port>
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join, normalize } from 'node:path';

const [folder, port] = [process.argv[2]!, Number(process.argv[3])];
const segments = new Map<string, Buffer>();

http
  .createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!));
    if (path.includes('..')) return res.writeHead(400).end();
    const file = join(folder, path);
    const send = (body: Buffer, type: string) =>
      res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' }).end(body);
    if (path.endsWith('.ts')) {
      const cached = segments.get(path);
      if (cached) return send(cached, 'video/mp2t');
      readFile(file).then(
        (body) => {
          segments.set(path, body);
          if (segments.size > 64) segments.delete(segments.keys().next().value!);
          send(body, 'video/mp2t');
        },
        () => res.writeHead(404).end(),
      );
      return;
    }
    readFile(file).then(
      (body) => send(body, 'application/vnd.apple.mpegurl'),
      () => res.writeHead(404).end(),
    );
  })
  .listen(port, '127.0.0.1');
