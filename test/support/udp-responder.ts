/**
 * A UDP port on 127.0.0.1 that answers however a test says: not at all (a port whose answers are
 * dropped), with garbage, or with a crafted wrong answer (an NTP reply in mode 3, a STUN reply for
 * another transaction, an empty DNS answer). For the failure modes a real server will not produce.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface UdpResponder {
  host: string;
  port: number;
  address: string;
  /** Every datagram received, in order. */
  received: Buffer[];
  close(): Promise<void>;
}

/** Starts the responder; `reply` returns the answer to a datagram, or undefined for silence. */
export async function startUdpResponder(
  reply: (request: Buffer) => Uint8Array | undefined,
): Promise<UdpResponder> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (msg, peer) => {
    received.push(msg);
    const answer = reply(msg);
    if (answer) socket.send(answer, peer.port, peer.address);
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
    received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
