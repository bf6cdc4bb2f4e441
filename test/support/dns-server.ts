/**
 * A minimal real DNS server over UDP on 127.0.0.1 (random port) for tests: answers A queries from a
 * table, NODATA for other types of known names, NXDOMAIN for unknown names, and stays silent for
 * the "silent" names (a server that never answers). DNS tests thus never send traffic off loopback.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface DnsQuery {
  name: string;
  /** 1 = A, 28 = AAAA, … */
  type: number;
}

export interface TestDnsServer {
  host: string;
  port: number;
  /** `127.0.0.1:<port>`, as the HTTP client's `dnsServers` takes it. */
  address: string;
  /** Every query received, in order. */
  queries: DnsQuery[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const RCODE_NXDOMAIN = 3;

/** Reads the question name starting at byte 12; undefined when malformed or compressed. */
function readQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length) {
    const len = msg[i]!;
    if (len === 0) {
      if (i + 5 > msg.length) return undefined;
      return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(i + 1), end: i + 5 };
    }
    if (len > 63 || i + 1 + len > msg.length) return undefined;
    labels.push(msg.toString('latin1', i + 1, i + 1 + len));
    i += 1 + len;
  }
  return undefined;
}

/**
 * Starts the server. `records` maps names to IPv4 addresses; names in `silent` get no reply.
 */
export async function startDnsServer(options: {
  records: Record<string, string>;
  silent?: string[];
}): Promise<TestDnsServer> {
  const records = new Map(Object.entries(options.records).map(([k, v]) => [k.toLowerCase(), v]));
  const silent = new Set((options.silent ?? []).map((n) => n.toLowerCase()));
  const queries: DnsQuery[] = [];
  const socket = dgram.createSocket('udp4');

  socket.on('message', (msg, peer) => {
    if (msg.length < 12) return;
    const q = readQuestion(msg);
    if (!q) return;
    queries.push({ name: q.name, type: q.type });
    if (silent.has(q.name)) return;
    const address = records.get(q.name);
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    const rd = msg[2]! & 0x01;
    const rcode = address === undefined ? RCODE_NXDOMAIN : 0;
    header[2] = 0x80 | 0x04 | rd; // QR, AA, RD copied
    header[3] = 0x80 | rcode; // RA
    header.writeUInt16BE(1, 4); // one question
    const answers: Buffer[] = [];
    if (address !== undefined && q.type === TYPE_A) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(1, 4); // class IN
      rr.writeUInt32BE(60, 6); // TTL
      rr.writeUInt16BE(4, 10);
      address.split('.').forEach((part, k) => {
        rr[12 + k] = Number(part);
      });
      answers.push(rr);
    }
    header.writeUInt16BE(answers.length, 6);
    const question = msg.subarray(12, q.end);
    socket.send(Buffer.concat([header, question, ...answers]), peer.port, peer.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const { port } = socket.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
