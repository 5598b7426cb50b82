/**
 * A tiny static file server for the browser test: `/` serves the Vite build (dist/web) and
 * `/fixtures/` the test fixtures, on 127.0.0.1 at a free port. No directory listings, no paths
 * outside the two roots.
 */
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export interface StaticServer {
  url: string;
  /** Every request path answered 404 (a test asserts this is empty). */
  missing: string[];
  close(): Promise<void>;
}

export async function serveStatic(mounts: Record<string, string>): Promise<StaticServer> {
  const missing: string[] = [];
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      if (path === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      const prefix = prefixes.find((p) => path.startsWith(p));
      let file: string | null = null;
      if (prefix !== undefined) {
        const root = mounts[prefix]!;
        const rel = normalize(path.slice(prefix.length)).replace(/^([/\\])+/, '');
        const f = join(root, rel);
        if (f === root || f.startsWith(root + sep)) file = f;
      }
      try {
        if (!file) throw new Error('outside');
        let s = await stat(file);
        if (s.isDirectory()) {
          file = join(file, 'index.html');
          s = await stat(file);
        }
        const body = await readFile(file);
        res.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'content-length': body.byteLength,
          'cache-control': 'no-store',
        });
        res.end(body);
      } catch {
        missing.push(path);
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`not found: ${path}`);
      }
    })();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('static server: no port');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    missing,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
