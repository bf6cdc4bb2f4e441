/**
 * A real STUN server for tests: coturn's turnserver in STUN-only mode on two free UDP ports of
 * loopback, standing for udp/3478 and its RFC 5780 alternate port udp/3479. turnserver opens the
 * alternate port only with a second address to offer, so it listens on 127.0.0.1 and 127.0.0.2
 * (both loopback). No config file (`-n`), its database and PID file in a temp directory, no CLI,
 * TCP, TLS or DTLS listeners: nothing outside the temp directory is touched.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  freeUdpPort,
  type PeerProcess,
  startPeerProcess,
  udpAsk,
  udpPortFree,
  waitForPeer,
} from './peer-process.js';

export interface TestStunServer {
  host: string;
  /** The stand-ins for 3478 and 3479. */
  ports: [number, number];
  close(): Promise<void>;
}

const SECOND_ADDRESS = '127.0.0.2';

/** A raw Binding Request, independent of the code under test. */
function bindingRequest(): Uint8Array {
  const request = new Uint8Array(20);
  request.set([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
  request.set(randomBytes(12), 8);
  return request;
}

async function answersBinding(port: number): Promise<boolean> {
  const reply = await udpAsk('127.0.0.1', port, bindingRequest(), 200);
  return reply !== undefined && reply.length >= 20 && reply.readUInt16BE(0) === 0x0101;
}

/** Two consecutive UDP ports free on both loopback addresses. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freeUdpPort();
    if (port >= 65535) continue;
    const free = await Promise.all([
      udpPortFree(port + 1, '127.0.0.1'),
      udpPortFree(port, SECOND_ADDRESS),
      udpPortFree(port + 1, SECOND_ADDRESS),
    ]);
    if (free.every(Boolean)) return port;
  }
  throw new Error('no two consecutive free UDP ports on loopback');
}

/** Starts turnserver; fails with its output when it will not answer (a missing coturn is a failure). */
export async function startStunServer(): Promise<TestStunServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-turnserver-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePortPair();
    const peer: PeerProcess = startPeerProcess('turnserver', [
      '-n',
      '--listening-ip=127.0.0.1',
      `--listening-ip=${SECOND_ADDRESS}`,
      `--listening-port=${port}`,
      `--alt-listening-port=${port + 1}`,
      '--relay-ip=127.0.0.1',
      '--stun-only',
      '--no-tcp',
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      `--db=${path.join(dir, 'turndb')}`,
      `--pidfile=${path.join(dir, 'turnserver.pid')}`,
      '--log-file=stdout',
      '--simple-log',
    ]);
    try {
      await waitForPeer(
        peer,
        `turnserver on 127.0.0.1:${port} and ${port + 1}`,
        async () => (await answersBinding(port)) && (await answersBinding(port + 1)),
      );
      return {
        host: '127.0.0.1',
        ports: [port, port + 1],
        close: async () => {
          await peer.stop();
          await fs.rm(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      await peer.stop();
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
  throw lastError;
}
