/**
 * A minimal HTTP CONNECT proxy on loopback for tests. It counts the tunnels it opens (proof that
 * HTTPS_PROXY was used, or bypassed through NO_PROXY) and resolves names only through its own
 * table — anything else is refused, so no test traffic leaves loopback.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface TestProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** `host:port` of every CONNECT request, in order (refused ones included). */
  tunnels: string[];
  close(): Promise<void>;
}

/** Starts the proxy; `hosts` maps the names it may connect to onto loopback addresses. */
export async function startConnectProxy(
  options: { hosts?: Record<string, string> } = {},
): Promise<TestProxy> {
  const hosts = new Map(Object.entries(options.hosts ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const tunnels: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(405, { 'content-type': 'text/plain' });
    res.end('only CONNECT\n');
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    tunnels.push(target);
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
    const name = m?.[1]?.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const address =
      name === undefined ? undefined : (hosts.get(name) ?? (isLoopback(name) ? name : undefined));
    if (!m || address === undefined) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const upstream = net.connect(Number(m[2]), address, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tunnels,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function isLoopback(host: string): boolean {
  return host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}
