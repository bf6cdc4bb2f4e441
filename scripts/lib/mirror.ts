/**
 * The development and test download mirror: a real HTTPS static file server for a release tree,
 * with its own test CA, single-range requests (206/416), HEAD, and faults that tests switch on per
 * path (errors, redirects, slow or cut bodies, too many bytes, Range ignored) and byte counters.
 *
 * Library: `startMirror({ tree, tlsDir })`. CLI (through `scripts/mirror`):
 *   scripts/mirror --tree DIR [--port N] [--host 127.0.0.1] [--tls-dir DIR] [--state FILE] [--rate B/s]
 * prints the base URL and serves until killed; `--state` writes {pid, url, port, caFile} as JSON.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureMirrorPki, type KeyCert } from './mirror-pki.js';

/**
 * A misbehaviour of the mirror for one path or prefix. Fields combine where that makes sense
 * (e.g. `ignoreRange` with `dropConnectionAt`).
 */
export interface Fault {
  /** Answer with this status (e.g. 404, 500) and a short text body. */
  status?: number;
  /** Answer 302 with this Location. */
  redirect?: string;
  /** Send the body at about this many bytes per second (headers at once). */
  drip?: number;
  /** Send this many bytes more than the file (0x5a). Without a Content-Length unless `declareExtra`. */
  extraBytes?: number;
  /** With `extraBytes`: declare them in Content-Length (an honest server of a bigger file). */
  declareExtra?: boolean;
  /** Close the connection cleanly (FIN) after this many body bytes of the response. */
  truncateAt?: number;
  /** Reset the connection (RST) after this many body bytes of the response: a killed download. */
  dropConnectionAt?: number;
  /** Answer 200 with the whole file even to a Range request. */
  ignoreRange?: boolean;
  /**
   * To a request for several ranges, answer as servers that do not serve them at once do: with
   * the whole file (200, as S3 does), or with one range from the first start to the last end.
   */
  multiRange?: 'whole' | 'merged';
  /** Apply to this many requests only, then clear itself. */
  times?: number;
}

/** What the mirror served for one path. */
export interface PathStats {
  requests: number;
  /** Body bytes written to the socket (after faults cut them). */
  bytes: number;
  /** The Range header of each request (null when none). */
  ranges: (string | null)[];
  /** The request target of each request, query string included. */
  urls: string[];
  statuses: number[];
}

export interface MirrorOptions {
  /** Directory whose files are served; nothing outside it ever is. */
  tree: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Where the test CA and server certificate live (reused when present). */
  tlsDir: string;
  /** Serve with this certificate instead of the CA-issued one (untrusted-certificate tests). */
  serverCert?: KeyCert;
  /** Pace every response body to about this many bytes per second (a demo's "network"). */
  rateBytesPerSecond?: number;
}

export interface Mirror {
  /** Base URL without a trailing slash, e.g. `https://127.0.0.1:40123`. */
  url: string;
  port: number;
  host: string;
  /** PEM of the CA that issued the mirror's certificate. */
  caPem: string;
  caFile: string;
  close(): Promise<void>;
  /** Switches a fault on (or off with undefined) for a path; a key ending in `/` or `*` is a prefix. */
  setFault(pathOrPrefix: string, fault: Fault | undefined): void;
  /** Counters for one URL path (e.g. `/root.img`). */
  stats(urlPath: string): PathStats;
  /** Every URL path requested since the start or the last `resetStats`. */
  paths(): string[];
  /** Body bytes served for all paths since the start or the last `resetStats`. */
  servedBytes(): number;
  resetStats(): void;
}

/** Starts the mirror; resolves once it listens. */
export async function startMirror(options: MirrorOptions): Promise<Mirror> {
  const pki = await ensureMirrorPki(options.tlsDir);
  const treeReal = await fs.realpath(options.tree);
  const host = options.host ?? '127.0.0.1';
  const faults = new Map<string, Fault>();
  const counters = new Map<string, PathStats>();

  const stats = (p: string): PathStats => {
    let s = counters.get(p);
    if (!s) {
      s = { requests: 0, bytes: 0, ranges: [], urls: [], statuses: [] };
      counters.set(p, s);
    }
    return s;
  };

  const faultFor = (p: string): Fault | undefined => {
    let best: { key: string; fault: Fault } | undefined;
    for (const [key, fault] of faults) {
      const prefix = key.endsWith('*') ? key.slice(0, -1) : key.endsWith('/') ? key : undefined;
      const hit = key === p || (prefix !== undefined && p.startsWith(prefix));
      if (hit && (!best || key.length > best.key.length)) best = { key, fault };
    }
    if (best?.fault.times !== undefined) {
      const left = best.fault.times - 1;
      if (left <= 0) faults.delete(best.key);
      else faults.set(best.key, { ...best.fault, times: left });
    }
    return best?.fault;
  };

  const server = https.createServer({
    key: (options.serverCert ?? pki.server).keyPem,
    cert: (options.serverCert ?? pki.server).certPem,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch((e: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`mirror error: ${e instanceof Error ? e.message : String(e)}\n`);
      } else {
        res.destroy();
      }
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const urlPath = new URL(req.url ?? '/', 'https://mirror.invalid').pathname;
    const s = stats(urlPath);
    s.requests += 1;
    s.ranges.push(req.headers.range ?? null);
    s.urls.push(req.url ?? '/');
    const reply = (status: number, headers: Record<string, string | number>, body?: string) => {
      s.statuses.push(status);
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }, 'method not allowed\n');
      return;
    }
    const fault = faultFor(urlPath) ?? {};
    if (fault.status !== undefined) {
      reply(fault.status, { 'content-type': 'text/plain' }, `fault: status ${fault.status}\n`);
      return;
    }
    if (fault.redirect !== undefined) {
      reply(302, { location: fault.redirect, 'content-type': 'text/plain' }, `see ${fault.redirect}\n`);
      return;
    }
    const file = await resolveInTree(treeReal, urlPath);
    const st = file ? await fs.stat(file).catch(() => undefined) : undefined;
    if (!file || !st?.isFile()) {
      reply(404, { 'content-type': 'text/plain' }, 'not found\n');
      return;
    }
    const size = st.size;
    // Validators as nginx gives them for a static file (its ETag is mtime-size; the mtime here is
    // in microseconds, so a file replaced within the same second still gets a new one), and its
    // answer to a conditional GET.
    const etag = `"${Math.round(st.mtimeMs * 1000).toString(16)}-${size.toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    if (notModified(req.headers, etag, st.mtimeMs)) {
      reply(304, { etag, 'last-modified': lastModified, 'cache-control': 'no-cache' });
      return;
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    // What any answer with the file carries. Clients may keep a copy, but must ask
    // (conditionally) before using it again.
    const fileHeaders = {
      'accept-ranges': 'bytes',
      'last-modified': lastModified,
      etag,
      'cache-control': 'no-cache',
    };
    let range = fault.ignoreRange
      ? undefined
      : (parseRanges(req.headers.range, size) ?? parseRange(req.headers.range, size));
    if (Array.isArray(range)) {
      if (range.length > 1 && fault.multiRange === undefined) {
        await sendParts(req, res, s, fault, options.rateBytesPerSecond, file, range, size, fileHeaders);
        return;
      }
      const [first, last] = [range[0]!, range.at(-1)!];
      range =
        range.length === 1 || fault.multiRange === 'merged'
          ? { start: first.start, end: last.end }
          : undefined;
    }
    if (range === 'unsatisfiable') {
      reply(
        416,
        { 'content-range': `bytes */${size}`, 'content-type': 'text/plain' },
        'range not satisfiable\n',
      );
      return;
    }
    if (range) {
      ({ start, end } = range);
      status = 206;
    }
    const length = Math.max(0, end - start + 1);
    const extra = fault.extraBytes ?? 0;
    const headers: Record<string, string | number> = { 'content-type': contentType(file), ...fileHeaders };
    if (extra === 0 || fault.declareExtra) headers['content-length'] = length + extra;
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    s.statuses.push(status);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders();
    await sendBody(
      req,
      res,
      s,
      fault,
      options.rateBytesPerSecond,
      length > 0 ? createReadStream(file, { start, end, highWaterMark: 64 * 1024 }) : undefined,
      extra,
    );
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    host,
    caPem: pki.ca.certPem,
    caFile: pki.caFile,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    setFault(key, fault) {
      if (fault === undefined) faults.delete(key);
      else faults.set(key, fault);
    },
    stats: (p) => {
      const s = stats(p);
      return { ...s, ranges: [...s.ranges], urls: [...s.urls], statuses: [...s.statuses] };
    },
    paths: () => [...counters.keys()],
    servedBytes: () => [...counters.values()].reduce((sum, s) => sum + s.bytes, 0),
    resetStats: () => counters.clear(),
  };
}

/**
 * A 206 `multipart/byteranges` answer of `ranges` (RFC 9110 §14.6), as nginx writes it: each part
 * a delimiter, Content-Type and Content-Range, then its bytes; the body goes out as sendBody sends
 * one (faults and pace apply to it whole).
 */
async function sendParts(
  req: IncomingMessage,
  res: ServerResponse,
  s: PathStats,
  fault: Fault,
  rate: number | undefined,
  file: string,
  ranges: { start: number; end: number }[],
  size: number,
  fileHeaders: Record<string, string>,
): Promise<void> {
  const boundary = randomBytes(10).toString('hex');
  const heads = ranges.map(
    (r, i) =>
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: ${contentType(file)}\r\n` +
      `content-range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
  );
  const tail = `\r\n--${boundary}--\r\n`;
  const length =
    heads.reduce((sum, h) => sum + Buffer.byteLength(h), 0) +
    ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0) +
    Buffer.byteLength(tail);
  s.statuses.push(206);
  res.writeHead(206, {
    'content-type': `multipart/byteranges; boundary=${boundary}`,
    ...fileHeaders,
    'content-length': length,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  res.flushHeaders();
  // Pieces of up to 64 KiB, as a single range is read: a part's header and bytes are often a few
  // hundred each, and sendBody paces (drip) piece by piece.
  async function* pieces(): AsyncGenerator<Buffer> {
    for (const [i, r] of ranges.entries()) {
      yield Buffer.from(heads[i]!, 'latin1');
      for await (const c of createReadStream(file, { start: r.start, end: r.end, highWaterMark: 64 * 1024 }))
        yield c as Buffer;
    }
    yield Buffer.from(tail, 'latin1');
  }
  async function* body(): AsyncGenerator<Buffer> {
    let held: Buffer[] = [];
    let bytes = 0;
    for await (const piece of pieces()) {
      held.push(piece);
      bytes += piece.length;
      if (bytes < 64 * 1024) continue;
      yield Buffer.concat(held);
      held = [];
      bytes = 0;
    }
    if (bytes > 0) yield Buffer.concat(held);
  }
  await sendBody(req, res, s, fault, rate, Readable.from(body()), 0);
}

/** Streams the body with the fault's cuts, pace and extra bytes; respects back-pressure. */
async function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  s: PathStats,
  fault: Fault,
  rate: number | undefined,
  file: NodeJS.ReadableStream | undefined,
  extra: number,
): Promise<void> {
  let gone = false;
  res.once('close', () => {
    gone = true;
  });
  const cutAt = fault.truncateAt ?? fault.dropConnectionAt;
  const startedAt = Date.now();
  let sent = 0;

  const write = (chunk: Buffer) =>
    new Promise<void>((resolve) => {
      s.bytes += chunk.length;
      sent += chunk.length;
      // Waits until the chunk is handed to the kernel (back-pressure), or until the peer has left.
      const done = () => {
        res.off('close', done);
        resolve();
      };
      res.once('close', done);
      res.write(chunk, done);
    });

  async function* chunks(): AsyncGenerator<Buffer> {
    if (file) for await (const c of file) yield c as Buffer;
    for (let left = extra; left > 0; left -= 64 * 1024) yield Buffer.alloc(Math.min(left, 64 * 1024), 0x5a);
  }

  try {
    for await (let chunk of chunks()) {
      if (gone) return;
      const cut = cutAt !== undefined && sent + chunk.length >= cutAt;
      if (cut) chunk = chunk.subarray(0, cutAt - sent);
      if (fault.drip) {
        const piece = Math.max(1, Math.floor(fault.drip / 10));
        for (let i = 0; i < chunk.length && !gone; i += piece) {
          await new Promise((r) => setTimeout(r, (piece * 1000) / fault.drip!));
          if (!gone) await write(chunk.subarray(i, i + piece));
        }
      } else if (chunk.length > 0) {
        if (rate) {
          // Hold the chunk back until its last byte is due at `rate`.
          const due = startedAt + ((sent + chunk.length) * 1000) / rate;
          if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
          if (gone) return;
        }
        await write(chunk);
      }
      if (cut) {
        if (fault.dropConnectionAt !== undefined) req.socket.resetAndDestroy();
        else req.socket.end();
        return;
      }
    }
    if (!gone) res.end();
  } finally {
    (file as { destroy?: () => void } | undefined)?.destroy?.();
  }
}

/**
 * The ranges of a `bytes=` header with several (each as parseRange reads it; those beyond the file
 * left out, as RFC 9110 allows); 'unsatisfiable' when none is left; undefined when it is absent,
 * malformed or names one range only.
 */
export function parseRanges(
  header: string | undefined,
  size: number,
): { start: number; end: number }[] | 'unsatisfiable' | undefined {
  const specs = header
    ?.trim()
    .replace(/^bytes=/, '')
    .split(',');
  if (!header?.trim().startsWith('bytes=') || !specs || specs.length < 2) return undefined;
  const out: { start: number; end: number }[] = [];
  for (const spec of specs) {
    const r = parseRange(`bytes=${spec.trim()}`, size);
    if (r === undefined) return undefined;
    if (r !== 'unsatisfiable') out.push(r);
  }
  return out.length === 0 ? 'unsatisfiable' : out;
}

/** One `bytes=` range of a file of `size` bytes; undefined to serve it whole (absent, malformed, multi). */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** The file a URL path names inside the tree, or undefined when it would leave the tree. */
async function resolveInTree(treeReal: string, urlPath: string): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const full = path.resolve(treeReal, `.${path.posix.normalize(`/${decoded}`)}`);
  const inside = (p: string) => p === treeReal || p.startsWith(`${treeReal}${path.sep}`);
  if (!inside(full)) return undefined;
  // A symlink inside the tree must not lead out of it either.
  const real = await fs.realpath(full).catch(() => undefined);
  return real && inside(real) ? real : undefined;
}

function contentType(file: string): string {
  if (/\.ya?ml$/.test(file)) return 'application/yaml';
  if (/\.(json)$/.test(file)) return 'application/json';
  if (/\.(sig|pem|txt)$/.test(file)) return 'text/plain';
  return 'application/octet-stream';
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tree: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'tls-dir': { type: 'string' },
      state: { type: 'string' },
      rate: { type: 'string' },
    },
    strict: true,
  });
  if (!values.tree) {
    process.stderr.write(
      'usage: scripts/mirror --tree DIR [--port N] [--host ADDR] [--tls-dir DIR] [--state FILE] [--rate B/s]\n',
    );
    process.exit(2);
  }
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const tlsDir = values['tls-dir'] ?? path.join(repoRoot, '.cache/mirror-tls');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`scripts/mirror: --port ${values.port} is not a port number\n`);
    process.exit(2);
  }
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0)) {
    process.stderr.write(
      `scripts/mirror: --rate ${values.rate} is not a positive number of bytes per second\n`,
    );
    process.exit(2);
  }
  const mirror = await startMirror({
    tree: values.tree,
    port,
    host: values.host,
    tlsDir,
    ...(rate ? { rateBytesPerSecond: rate } : {}),
  });
  const state = values.state;
  if (state) {
    const temp = `${state}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.mkdir(path.dirname(path.resolve(state)), { recursive: true });
    await fs.writeFile(
      temp,
      `${JSON.stringify({ pid: process.pid, url: mirror.url, port: mirror.port, caFile: mirror.caFile })}\n`,
    );
    await fs.rename(temp, state);
  }
  process.stdout.write(`${mirror.url}\n`);
  process.stderr.write(
    `scripts/mirror: serving ${path.resolve(values.tree)}; CA certificate: ${mirror.caFile}\n`,
  );
  const stop = async () => {
    await mirror.close();
    if (state) await fs.rm(state, { force: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`scripts/mirror: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}

/**
 * RFC 9110 §13.2.2: If-None-Match decides when present (a match, or `*`, means 304); otherwise
 * If-Modified-Since does, at the one-second resolution of HTTP dates.
 */
function notModified(headers: IncomingHttpHeaders, etag: string, mtimeMs: number): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined)
    return inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag);
  const ims = headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(mtimeMs / 1000) * 1000 <= since;
}
