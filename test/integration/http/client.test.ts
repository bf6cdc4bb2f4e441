import { promises as fs } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { createHttpClient, type HttpClient, type HttpClientOptions } from '@clgw/core/platform/http.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureMirrorPki } from '../../../scripts/lib/mirror-pki.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { artifactBytes, startTestMirror, TEST_TLS_DIR, type TestMirror } from '../../support/mirror.js';
import { startConnectProxy } from '../../support/proxy.js';
import { untrustedServerCert } from '../../support/tls.js';

const COMPAT = 'platforms:\n  gateway: {}\n';
const ARTIFACT = artifactBytes(200_000, 7);
const TEST_NAME = 'download.clgw.test';

let mirror: TestMirror;
let dns: TestDnsServer;

beforeAll(async () => {
  mirror = await startTestMirror({
    'compat.yaml': COMPAT,
    'root.img': ARTIFACT,
    'big.txt': 'x'.repeat(5000),
  });
  dns = await startDnsServer({ records: { [TEST_NAME]: '127.0.0.1' }, silent: ['silent.clgw.test'] });
});

afterAll(async () => {
  await mirror?.close();
  await dns?.close();
});

afterEach(() => {
  for (const key of ['/compat.yaml', '/root.img', '/big.txt']) mirror.setFault(key, undefined);
  mirror.resetStats();
  vi.unstubAllEnvs();
});

function client(extra: Partial<HttpClientOptions> = {}) {
  return createHttpClient({ clock: systemClock, ca: mirror.caPem, proxy: null, retries: 0, ...extra });
}

/** The ClgwError a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<ClgwError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClgwError);
    return e as ClgwError;
  }
  throw new Error('expected the request to fail, it succeeded');
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('getBuffer', () => {
  it('fetches compat.yaml and keeps the cache-busting timestamp query', async () => {
    const body = await client().getBuffer(`${mirror.url}/compat.yaml?timestamp=1767225600000000000`, {
      maxBytes: 1024,
    });
    expect(body.toString()).toBe(COMPAT);
    expect(mirror.stats('/compat.yaml').urls).toEqual(['/compat.yaml?timestamp=1767225600000000000']);
  });

  it('resolves the download server through the configured DNS server', async () => {
    const body = await client({ dnsServers: [dns.address] }).getBuffer(
      `https://${TEST_NAME}:${mirror.port}/compat.yaml`,
      { maxBytes: 1024 },
    );
    expect(body.toString()).toBe(COMPAT);
    expect(dns.queries.some((q) => q.name === TEST_NAME)).toBe(true);
  });

  it('maps 404 to a permanent HTTP_STATUS naming the URL', async () => {
    const e = await failure(client().getBuffer(`${mirror.url}/missing.yaml?timestamp=5`, { maxBytes: 1024 }));
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.transient).toBe(false);
    expect(e.details.status).toBe(404);
    expect(e.message).toContain(`${mirror.url}/missing.yaml`);
    expect(e.message).not.toContain('timestamp');
    expect(e.details.url).toBe(`${mirror.url}/missing.yaml`);
  });

  it('maps 500 to a transient HTTP_STATUS and retries it a bounded number of times', async () => {
    mirror.setFault('/compat.yaml', { status: 500 });
    const e = await failure(
      client({ retries: 2, retryDelayMs: 10 }).getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024 }),
    );
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.transient).toBe(true);
    expect(e.details.status).toBe(500);
    expect(e.message).toContain(`${mirror.url}/compat.yaml`);
    expect(mirror.stats('/compat.yaml').requests).toBe(3);
  });

  it('recovers when a transient failure goes away between retries', async () => {
    mirror.setFault('/compat.yaml', { status: 503, times: 1 });
    const body = await client({ retries: 2, retryDelayMs: 10 }).getBuffer(`${mirror.url}/compat.yaml`, {
      maxBytes: 1024,
    });
    expect(body.toString()).toBe(COMPAT);
    expect(mirror.stats('/compat.yaml').statuses).toEqual([503, 200]);
  });

  it('follows a same-host HTTPS redirect', async () => {
    mirror.setFault('/old/compat.yaml', { redirect: `${mirror.url}/compat.yaml` });
    const body = await client().getBuffer(`${mirror.url}/old/compat.yaml`, { maxBytes: 1024 });
    expect(body.toString()).toBe(COMPAT);
    mirror.setFault('/old/compat.yaml', undefined);
  });

  it('refuses a redirect to another host', async () => {
    const location = `https://evil.example:${mirror.port}/compat.yaml`;
    mirror.setFault('/compat.yaml', { redirect: location });
    const e = await failure(client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024 }));
    expect(e.code).toBe('REDIRECT_REFUSED');
    expect(e.transient).toBe(false);
    expect(e.message).toContain(location);
    expect(e.details.location).toBe(location);
  });

  it('refuses a redirect to plain http on the same host', async () => {
    const location = `http://127.0.0.1:${mirror.port}/compat.yaml`;
    mirror.setFault('/compat.yaml', { redirect: location });
    const e = await failure(client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024 }));
    expect(e.code).toBe('REDIRECT_REFUSED');
    expect(e.message).toContain(location);
  });

  it('refuses an endless redirect loop after 3 hops', async () => {
    mirror.setFault('/compat.yaml', { redirect: '/compat.yaml' });
    const e = await failure(client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024 }));
    expect(e.code).toBe('REDIRECT_REFUSED');
    expect(e.message).toContain('more than 3 redirects');
    expect(mirror.stats('/compat.yaml').requests).toBe(4);
  });

  it('names the DNS server when the name does not exist (NXDOMAIN)', async () => {
    const e = await failure(
      client({ dnsServers: [dns.address] }).getBuffer(
        `https://nothere.clgw.test:${mirror.port}/compat.yaml`,
        {
          maxBytes: 1024,
        },
      ),
    );
    expect(e.code).toBe('DNS_LOOKUP_FAILED');
    expect(e.message).toContain(`DNS lookup of nothere.clgw.test failed on ${dns.address}`);
    expect(e.message).toContain('NXDOMAIN');
    expect(e.details.url).toBe(`https://nothere.clgw.test:${mirror.port}/compat.yaml`);
  });

  it('names the DNS server when it never answers', async () => {
    const e = await failure(
      client({ dnsServers: [dns.address], connectTimeoutMs: 1500 }).getBuffer(
        `https://silent.clgw.test:${mirror.port}/compat.yaml`,
        { maxBytes: 1024 },
      ),
    );
    expect(e.code).toBe('DNS_LOOKUP_FAILED');
    expect(e.transient).toBe(true);
    expect(e.message).toContain(`DNS lookup of silent.clgw.test failed on ${dns.address}`);
    expect(e.message).toContain('i/o timeout');
    expect(dns.queries.some((q) => q.name === 'silent.clgw.test')).toBe(true);
  });

  it('names host:port when the connection is refused', async () => {
    const port = await closedPort();
    const e = await failure(client().getBuffer(`https://127.0.0.1:${port}/compat.yaml`, { maxBytes: 1024 }));
    expect(e.code).toBe('CONNECTION_REFUSED');
    expect(e.transient).toBe(true);
    expect(e.message).toContain(`127.0.0.1:${port}`);
    expect(e.details.port).toBe(port);
  });

  it('names the TLS phase when the server accepts the connection but never answers the handshake', async () => {
    const sockets: net.Socket[] = [];
    const mute = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const { port } = mute.address() as net.AddressInfo;
    try {
      const e = await failure(
        client({ connectTimeoutMs: 400 }).getBuffer(`https://127.0.0.1:${port}/compat.yaml`, {
          maxBytes: 1024,
        }),
      );
      expect(e.code).toBe('TIMED_OUT');
      expect(e.details.phase).toBe('tls');
      expect(e.message).toContain(`TLS handshake with 127.0.0.1:${port} not finished within 400 ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });

  it('names the response phase when the headers never come', async () => {
    const sockets: tls.TLSSocket[] = [];
    const { server } = await ensureMirrorPki(TEST_TLS_DIR);
    const silent = tls.createServer({ key: server.keyPem, cert: server.certPem }, (socket) =>
      sockets.push(socket),
    );
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const e = await failure(
        client({ responseTimeoutMs: 400 }).getBuffer(`https://127.0.0.1:${port}/compat.yaml`, {
          maxBytes: 1024,
        }),
      );
      expect(e.code).toBe('TIMED_OUT');
      expect(e.details.phase).toBe('response');
      expect(e.message).toContain(`127.0.0.1:${port} sent no response headers within 400 ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('fails with TLS_ERROR on a certificate the configured CA did not issue', async () => {
    const rogue = await startTestMirror({ 'compat.yaml': COMPAT }, { serverCert: untrustedServerCert() });
    try {
      const e = await failure(client().getBuffer(`${rogue.url}/compat.yaml`, { maxBytes: 1024 }));
      expect(e.code).toBe('TLS_ERROR');
      expect(e.transient).toBe(false);
      expect(e.message).toContain(`TLS handshake with 127.0.0.1:${rogue.port} failed`);
      expect(e.message).toContain('unable to verify the first certificate');
      expect(rogue.stats('/compat.yaml').requests).toBe(0);
    } finally {
      await rogue.close();
    }
  });

  it('does not trust the test CA unless configured to', async () => {
    const e = await failure(
      createHttpClient({ clock: systemClock, proxy: null, retries: 0 }).getBuffer(
        `${mirror.url}/compat.yaml`,
        {
          maxBytes: 1024,
        },
      ),
    );
    expect(e.code).toBe('TLS_ERROR');
    expect(e.message).toContain(`127.0.0.1:${mirror.port}`);
  });

  it('refuses a body over maxBytes declared in Content-Length', async () => {
    const e = await failure(client().getBuffer(`${mirror.url}/big.txt`, { maxBytes: 1000 }));
    expect(e.code).toBe('SIZE_EXCEEDED');
    expect(e.transient).toBe(false);
    expect(e.details.limit).toBe(1000);
    expect(e.message).toContain(`${mirror.url}/big.txt`);
  });

  it('refuses a body that grows over maxBytes without a Content-Length', async () => {
    mirror.setFault('/compat.yaml', { extraBytes: 4000 });
    const e = await failure(client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1000 }));
    expect(e.code).toBe('SIZE_EXCEEDED');
    expect(e.message).toContain(`${mirror.url}/compat.yaml`);
    expect(e.message).toContain('more than 1000 bytes');
  });

  it('gives up at the deadline', async () => {
    mirror.setFault('/compat.yaml', { drip: 5 });
    const e = await failure(
      client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024, deadlineMs: 600 }),
    );
    expect(e.code).toBe('TIMED_OUT');
    expect(e.details.phase).toBe('deadline');
    expect(e.message).toContain('600 ms');
    expect(e.message).toContain(`${mirror.url}/compat.yaml`);
  });

  it('rejects with the abort reason when the caller aborts', async () => {
    mirror.setFault('/compat.yaml', { drip: 5 });
    const ac = new AbortController();
    const reason = new Error('operator cancelled');
    const p = client().getBuffer(`${mirror.url}/compat.yaml`, { maxBytes: 1024, signal: ac.signal });
    setTimeout(() => ac.abort(reason), 200);
    await expect(p).rejects.toBe(reason);
  });

  it('reports an error status without reading an endless error page', async () => {
    // A server (or a broken CDN edge) that answers 503 with a body that never ends: the status
    // is what counts: the failure may not wait for that body to end (got reads an error's body
    // before it decides on a retry; the client reads 64 KiB of it at most).
    const { server: cert } = await ensureMirrorPki(TEST_TLS_DIR);
    const page = Buffer.alloc(64 * 1024, 0x3c);
    const endless = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      const more = () => {
        while (!res.destroyed && res.write(page));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', () => r()));
    const { port } = endless.address() as net.AddressInfo;
    try {
      const e = await failure(
        client({ retries: 1, retryDelayMs: 10 }).getBuffer(`https://127.0.0.1:${port}/compat.yaml`, {
          maxBytes: 1024,
          deadlineMs: 20_000,
        }),
      );
      expect(e.code).toBe('HTTP_STATUS');
      expect(e.details.status).toBe(503);
      expect(e.message).toContain(`127.0.0.1:${port}/compat.yaml`);
    } finally {
      endless.closeAllConnections();
      await new Promise<void>((r) => endless.close(() => r()));
    }
  });
});

describe('getIfChanged', () => {
  it('answers "unchanged" to a 304, sending the ETag, and the new body once the file changed', async () => {
    const http = client();
    const first = await http.getIfChanged(`${mirror.url}/compat.yaml`, {
      maxBytes: 1024,
      validators: undefined,
    });
    expect(first).toMatchObject({ changed: true, body: Buffer.from(COMPAT) });
    const validators = first.changed ? first.validators : undefined;
    expect(validators?.etag).toMatch(/^".+"$/);
    expect(validators?.lastModified).toBeTruthy();

    mirror.resetStats();
    expect(await http.getIfChanged(`${mirror.url}/compat.yaml`, { maxBytes: 1024, validators })).toEqual({
      changed: false,
    });
    expect(mirror.stats('/compat.yaml')).toMatchObject({ statuses: [304], bytes: 0 });

    const changed = `${COMPAT}# republished\n`;
    await fs.writeFile(path.join(mirror.tree, 'compat.yaml'), changed);
    const again = await http.getIfChanged(`${mirror.url}/compat.yaml`, { maxBytes: 1024, validators });
    expect(again).toMatchObject({ changed: true, body: Buffer.from(changed) });
    expect(again.changed && again.validators?.etag).not.toBe(validators?.etag);
    await fs.writeFile(path.join(mirror.tree, 'compat.yaml'), COMPAT);
  });

  it('falls back to If-Modified-Since when the server gave no ETag', async () => {
    const first = await client().getIfChanged(`${mirror.url}/compat.yaml`, {
      maxBytes: 1024,
      validators: undefined,
    });
    const lastModified = first.changed ? first.validators?.lastModified : undefined;
    expect(lastModified).toBeTruthy();
    const result = await client().getIfChanged(`${mirror.url}/compat.yaml`, {
      maxBytes: 1024,
      validators: { lastModified: lastModified as string },
    });
    expect(result).toEqual({ changed: false });
  });

  it('still fails on an HTTP error, naming the server', async () => {
    mirror.setFault('/compat.yaml', { status: 503 });
    const e = await failure(
      client().getIfChanged(`${mirror.url}/compat.yaml`, { maxBytes: 1024, validators: { etag: '"x"' } }),
    );
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.message).toContain(mirror.url.replace('https://', ''));
  });
});

/**
 * The artifact body both ways the client gives it: openStream's stream (container archives, the
 * chunk index) and receive's pieces (the slot writer). `got` collects what was delivered, also
 * when the body fails; resolves with where the body starts.
 */
type Transport = (
  http: HttpClient,
  url: string,
  opts: { offset?: number; expectedSize: number; signal?: AbortSignal },
  got: Buffer[],
) => Promise<number>;
const transports: Record<string, Transport> = {
  openStream: async (http, url, opts, got) => {
    const { stream, start } = await http.openStream(url, opts);
    for await (const c of stream) got.push(c as Buffer);
    return start;
  },
  receive: async (http, url, opts, got) => {
    let start = -1;
    await http.receive(
      url,
      opts,
      (s) => {
        start = s;
      },
      {
        data: (c) => {
          got.push(Buffer.from(c));
          return undefined;
        },
      },
    );
    return start;
  },
};

describe.each(Object.entries(transports))('artifact body by %s', (_name, transport) => {
  const url = () => `${mirror.url}/root.img`;
  const fetchAll = async (http: HttpClient, opts: { offset?: number; expectedSize: number }) => {
    const got: Buffer[] = [];
    const start = await transport(http, url(), opts, got);
    return { start, body: Buffer.concat(got) };
  };

  it('streams the whole artifact from 0', async () => {
    const { start, body } = await fetchAll(client(), { expectedSize: ARTIFACT.length });
    expect(start).toBe(0);
    expect(body.equals(ARTIFACT)).toBe(true);
    expect(mirror.stats('/root.img').ranges).toEqual([null]);
  });

  it('asks for the rest with a Range request and says where the body starts', async () => {
    const { start, body } = await fetchAll(client(), { offset: 150_000, expectedSize: ARTIFACT.length });
    expect(start).toBe(150_000);
    expect(body.equals(ARTIFACT.subarray(150_000))).toBe(true);
    expect(mirror.stats('/root.img')).toMatchObject({
      ranges: ['bytes=150000-'],
      statuses: [206],
      bytes: 50_000,
    });
  });

  it('starts at 0 when the server ignores Range', async () => {
    mirror.setFault('/root.img', { ignoreRange: true });
    const { start, body } = await fetchAll(client(), { offset: 150_000, expectedSize: ARTIFACT.length });
    expect(start).toBe(0);
    expect(body.equals(ARTIFACT)).toBe(true);
  });

  it('follows a same-host HTTPS redirect', async () => {
    mirror.setFault('/old/root.img', { redirect: url() });
    const got: Buffer[] = [];
    await transport(client(), `${mirror.url}/old/root.img`, { expectedSize: ARTIFACT.length }, got);
    expect(Buffer.concat(got).equals(ARTIFACT)).toBe(true);
    mirror.setFault('/old/root.img', undefined);
  });

  it('refuses an artifact whose server size differs from the expected size', async () => {
    const e = await failure(fetchAll(client(), { expectedSize: ARTIFACT.length - 1 }));
    expect(e.code).toBe('SIZE_EXCEEDED');
    expect(e.message).toContain(url());
  });

  it('fails with SIZE_EXCEEDED before delivering a byte past the expected size', async () => {
    mirror.setFault('/root.img', { extraBytes: 100_000 });
    const got: Buffer[] = [];
    const e = await failure(transport(client(), url(), { expectedSize: ARTIFACT.length }, got));
    expect(e.code).toBe('SIZE_EXCEEDED');
    expect(e.message).toContain(url());
    expect(Buffer.concat(got).length).toBeLessThanOrEqual(ARTIFACT.length);
  });

  it('reports a body cut short as a transient ARTIFACT_TRUNCATED', async () => {
    mirror.setFault('/root.img', { truncateAt: 70_000 });
    const e = await failure(fetchAll(client(), { expectedSize: ARTIFACT.length }));
    expect(e.code).toBe('ARTIFACT_TRUNCATED');
    expect(e.transient).toBe(true);
    expect(e.message).toContain(url());
    expect(e.details.expected).toBe(ARTIFACT.length);
  });

  it('reports a reset connection mid-body as a transient, resumable failure', async () => {
    mirror.setFault('/root.img', { dropConnectionAt: 70_000 });
    const e = await failure(fetchAll(client(), { expectedSize: ARTIFACT.length }));
    expect(['ARTIFACT_TRUNCATED', 'CONNECTION_RESET']).toContain(e.code);
    expect(e.transient).toBe(true);
    expect(e.message).toContain(`127.0.0.1:${mirror.port}`);
  });

  it('times out a body slower than the minimum throughput', async () => {
    mirror.setFault('/root.img', { drip: 1 });
    const http = client({ minBytesPerSecond: 1000, minThroughputWindowMs: 2000, idleTimeoutMs: 10_000 });
    const e = await failure(fetchAll(http, { expectedSize: ARTIFACT.length }));
    expect(e.code).toBe('TIMED_OUT');
    expect(e.details.phase).toBe('throughput');
    expect(e.message).toContain(`127.0.0.1:${mirror.port}`);
    expect(e.message).toContain('1000 bytes/s over 2000 ms');
  });

  it('times out a body that stops sending (idle)', async () => {
    mirror.setFault('/root.img', { drip: 1 });
    const http = client({ idleTimeoutMs: 300, minBytesPerSecond: 0 });
    const e = await failure(fetchAll(http, { expectedSize: ARTIFACT.length }));
    expect(e.code).toBe('TIMED_OUT');
    expect(e.details.phase).toBe('idle');
    expect(e.message).toContain('300 ms');
    expect(e.message).toContain(url());
  });

  it('maps a 416 to HTTP_STATUS', async () => {
    mirror.setFault('/root.img', { status: 416 });
    const e = await failure(fetchAll(client(), { offset: 10, expectedSize: ARTIFACT.length }));
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.details.status).toBe(416);
  });

  it('names host:port when the connection is refused', async () => {
    const port = await closedPort();
    const got: Buffer[] = [];
    const e = await failure(
      transport(client(), `https://127.0.0.1:${port}/root.img`, { expectedSize: 10 }, got),
    );
    expect(e.code).toBe('CONNECTION_REFUSED');
    expect(e.message).toContain(`127.0.0.1:${port}`);
  });

  it('fails with TLS_ERROR on a certificate the configured CA did not issue', async () => {
    const e = await failure(
      fetchAll(client({ ca: untrustedServerCert().certPem }), { expectedSize: ARTIFACT.length }),
    );
    expect(e.code).toBe('TLS_ERROR');
    expect(e.message).toContain(`127.0.0.1:${mirror.port}`);
  });

  it('rejects with the abort reason when the caller aborts mid-body', async () => {
    mirror.setFault('/root.img', { drip: 1 });
    const stop = new AbortController();
    const reason = new Error('the update window closed');
    setTimeout(() => stop.abort(reason), 200);
    const got: Buffer[] = [];
    await expect(
      transport(client(), url(), { expectedSize: ARTIFACT.length, signal: stop.signal }, got),
    ).rejects.toBe(reason);
  });
});

describe('receive', () => {
  const url = () => `${mirror.url}/root.img`;

  it('holds the body back while the sink waits, and loses no byte doing so', async () => {
    const got: Buffer[] = [];
    let waits = 0;
    let busy = false;
    let deliveredWhileBusy = 0;
    await client().receive(url(), { expectedSize: ARTIFACT.length }, () => undefined, {
      data: (c) => {
        if (busy) deliveredWhileBusy++;
        got.push(Buffer.from(c));
        // Every third piece the consumer is busy (its disk): the client must neither drop nor
        // reorder what TLS hands over meanwhile, nor deliver it while told to wait.
        if (got.length % 3 !== 0) return undefined;
        waits++;
        busy = true;
        return new Promise<void>((r) =>
          setTimeout(() => {
            busy = false;
            r();
          }, 5),
        );
      },
    });
    expect(deliveredWhileBusy).toBe(0);
    expect(waits).toBeGreaterThan(0);
    expect(Buffer.concat(got).equals(ARTIFACT)).toBe(true);
  });

  it('fails with what the sink threw, and stops reading', async () => {
    const broken = new Error('slot write failed');
    let pieces = 0;
    await expect(
      client().receive(url(), { expectedSize: ARTIFACT.length }, () => undefined, {
        data: () => {
          pieces++;
          throw broken;
        },
      }),
    ).rejects.toBe(broken);
    expect(pieces).toBe(1);
  });

  /** A TLS server on loopback that answers any request by calling `answer` with the socket. */
  async function rawServer(answer: (socket: tls.TLSSocket) => void) {
    const { server: cert } = await ensureMirrorPki(TEST_TLS_DIR);
    const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => answer(socket));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as net.AddressInfo;
    return {
      url: `https://127.0.0.1:${port}/root.img`,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  it('reads a response head that arrives in pieces', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-le');
      setTimeout(() => {
        socket.write(`ngth: ${ARTIFACT.length}\r\n\r\n`);
        socket.end(ARTIFACT);
      }, 50);
    });
    try {
      const got: Buffer[] = [];
      await transports.receive!(client(), server.url, { expectedSize: ARTIFACT.length }, got);
      expect(Buffer.concat(got).equals(ARTIFACT)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('refuses a response that is not HTTP, naming the server', async () => {
    const server = await rawServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    try {
      const e = await failure(transports.receive!(client(), server.url, { expectedSize: 10 }, []));
      expect(e.message).toContain('not an HTTP/1.x status line');
      expect(e.message).toContain(server.url.replace('/root.img', '').replace('https://', ''));
    } finally {
      await server.close();
    }
  });

  it("takes a chunked body through Node's client", async () => {
    const { server: cert } = await ensureMirrorPki(TEST_TLS_DIR);
    const chunked = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let at = 0; at < ARTIFACT.length; at += 50_000) res.write(ARTIFACT.subarray(at, at + 50_000));
      res.end();
    });
    await new Promise<void>((r) => chunked.listen(0, '127.0.0.1', () => r()));
    const { port } = chunked.address() as net.AddressInfo;
    try {
      const got: Buffer[] = [];
      await transports.receive!(
        client(),
        `https://127.0.0.1:${port}/root.img`,
        { expectedSize: ARTIFACT.length },
        got,
      );
      expect(Buffer.concat(got).equals(ARTIFACT)).toBe(true);
    } finally {
      chunked.closeAllConnections();
      await new Promise<void>((r) => chunked.close(() => r()));
    }
  });
});

describe('kept connections', () => {
  /**
   * A TLS server on loopback speaking just enough HTTP/1.1 for several requests per connection:
   * `answer` gets each request head and its number on the connection (0, 1, …).
   */
  async function keepAliveServer(answer: (socket: tls.TLSSocket, head: string, n: number) => void) {
    const { server: cert } = await ensureMirrorPki(TEST_TLS_DIR);
    const sockets = new Set<tls.TLSSocket>();
    const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      let pending = '';
      let n = 0;
      socket.on('data', (d: Buffer) => {
        pending += d.toString('latin1');
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          const head = pending.slice(0, end);
          pending = pending.slice(end + 4);
          answer(socket, head, n++);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as net.AddressInfo;
    return {
      url: `https://127.0.0.1:${port}/root.img`,
      /** Connections accepted so far. */
      connections: () => sockets.size,
      close: () =>
        new Promise<void>((r) => {
          server.close(() => r());
          // The client keeps its last connection open for a while.
          for (const socket of sockets) socket.destroy();
        }),
    };
  }

  /** Answers a GET of ARTIFACT, or of the one range it asks for, delimited by Content-Length. */
  function serveArtifact(socket: tls.TLSSocket, head: string, extra = ''): void {
    const range = /^range: bytes=(\d+)-(\d+)$/im.exec(head);
    const [start, end] = range ? [Number(range[1]), Number(range[2])] : [0, ARTIFACT.length - 1];
    const status = range
      ? `206 Partial Content\r\ncontent-range: bytes ${start}-${end}/${ARTIFACT.length}`
      : '200 OK';
    socket.write(`HTTP/1.1 ${status}\r\ncontent-length: ${end - start + 1}\r\n${extra}\r\n`);
    socket.write(ARTIFACT.subarray(start, end + 1));
  }

  const ranges = [
    [0, 9_999],
    [50_000, 50_000],
    [150_000, 199_999],
  ] as const;

  /** Each range through receiveRange, then the whole artifact through receive; all must be right. */
  async function fetchAll(http: HttpClient, url: string): Promise<void> {
    for (const [start, end] of ranges) {
      const got: Buffer[] = [];
      await http.receiveRange(
        url,
        { start, end, size: ARTIFACT.length },
        {
          data: (c) => {
            got.push(Buffer.from(c));
            return undefined;
          },
        },
      );
      expect(Buffer.concat(got).equals(ARTIFACT.subarray(start, end + 1))).toBe(true);
    }
    const got: Buffer[] = [];
    await transports.receive!(http, url, { expectedSize: ARTIFACT.length }, got);
    expect(Buffer.concat(got).equals(ARTIFACT)).toBe(true);
  }

  it('sends the next request on the connection the last one left open', async () => {
    const server = await keepAliveServer((socket, head) => serveArtifact(socket, head));
    try {
      await fetchAll(client(), server.url);
      expect(server.connections()).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('sends a request again on a new connection when the server closed the kept one unseen', async () => {
    // The server drops each connection at its second request, as one whose keep-alive timeout
    // ran out just as the request arrived: no request may be lost or fail for it.
    const server = await keepAliveServer((socket, head, n) => {
      if (n === 0) serveArtifact(socket, head);
      else socket.destroy();
    });
    try {
      await fetchAll(client(), server.url);
      expect(server.connections()).toBe(ranges.length + 1);
    } finally {
      await server.close();
    }
  });

  it('does not reuse a connection the server said it closes', async () => {
    const server = await keepAliveServer((socket, head) =>
      serveArtifact(socket, head, 'connection: close\r\n'),
    );
    try {
      await fetchAll(client(), server.url);
      expect(server.connections()).toBe(ranges.length + 1);
    } finally {
      await server.close();
    }
  });
});

describe('proxy', () => {
  /**
   * Runs `use` with a client whose proxy comes from HTTPS_PROXY (a CONNECT proxy on loopback) and
   * the mirror's URL by a name only the proxy resolves; every request must take one tunnel.
   */
  async function throughProxy(use: (http: HttpClient, base: string) => Promise<void>): Promise<void> {
    const proxy = await startConnectProxy({ hosts: { [TEST_NAME]: '127.0.0.1' } });
    try {
      vi.stubEnv('HTTPS_PROXY', proxy.url);
      vi.stubEnv('NO_PROXY', '');
      await use(
        createHttpClient({ clock: systemClock, ca: mirror.caPem, retries: 0 }),
        `https://${TEST_NAME}:${mirror.port}`,
      );
      expect(proxy.tunnels).toEqual([`${TEST_NAME}:${mirror.port}`]);
    } finally {
      await proxy.close();
    }
  }

  it('tunnels through HTTPS_PROXY from the environment', () =>
    throughProxy(async (http, base) => {
      const body = await http.getBuffer(`${base}/compat.yaml`, { maxBytes: 1024 });
      expect(body.toString()).toBe(COMPAT);
    }));

  it("takes an artifact through the tunnel with Node's client", () =>
    throughProxy(async (http, base) => {
      const got: Buffer[] = [];
      const opts = { offset: 1000, expectedSize: ARTIFACT.length };
      expect(await transports.receive!(http, `${base}/root.img`, opts, got)).toBe(1000);
      expect(Buffer.concat(got).equals(ARTIFACT.subarray(1000))).toBe(true);
    }));

  it("takes ranges through the tunnel with Node's client", () =>
    throughProxy(async (http, base) => {
      for (const [start, end] of [
        [0, 4095],
        [100_000, 150_000],
      ] as const) {
        const got: Buffer[] = [];
        await http.receiveRange(
          `${base}/root.img`,
          { start, end, size: ARTIFACT.length },
          {
            data: (c) => {
              got.push(Buffer.from(c));
              return undefined;
            },
          },
        );
        expect(Buffer.concat(got).equals(ARTIFACT.subarray(start, end + 1))).toBe(true);
      }
    }));

  it('goes direct for a host listed in NO_PROXY', async () => {
    const proxy = await startConnectProxy({ hosts: { [TEST_NAME]: '127.0.0.1' } });
    try {
      vi.stubEnv('HTTPS_PROXY', proxy.url);
      vi.stubEnv('NO_PROXY', 'localhost,.clgw.test');
      const http = createHttpClient({
        clock: systemClock,
        ca: mirror.caPem,
        retries: 0,
        dnsServers: [dns.address],
      });
      const body = await http.getBuffer(`https://${TEST_NAME}:${mirror.port}/compat.yaml`, {
        maxBytes: 1024,
      });
      expect(body.toString()).toBe(COMPAT);
      expect(proxy.tunnels).toEqual([]);
      expect(dns.queries.some((q) => q.name === TEST_NAME)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('names the proxy when it refuses connections', async () => {
    const port = await closedPort();
    vi.stubEnv('HTTPS_PROXY', `http://127.0.0.1:${port}`);
    const http = createHttpClient({ clock: systemClock, ca: mirror.caPem, retries: 0 });
    const e = await failure(
      http.getBuffer(`https://${TEST_NAME}:${mirror.port}/compat.yaml`, { maxBytes: 1024 }),
    );
    expect(e.code).toBe('CONNECTION_REFUSED');
    expect(e.message).toContain(`proxy 127.0.0.1:${port}`);
    expect(e.message).toContain(`${TEST_NAME}:${mirror.port}`);
  });

  it('rejects a malformed proxy setting when the client is built', () => {
    expect(() => createHttpClient({ clock: systemClock, proxy: { url: 'ftp://proxy.example:21' } })).toThrow(
      expect.objectContaining({ code: 'PROXY_INVALID' }),
    );
  });
});
