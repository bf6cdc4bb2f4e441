/**
 * Shared plumbing for the real peers the diagnostics tests start (chronyd, coturn's turnserver):
 * a foreground daemon whose output is kept for the error message when it will not come up, free
 * loopback UDP ports, and a raw UDP question for "is it answering yet?" that does not use the code
 * under test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface PeerProcess {
  child: ChildProcess;
  /** The last 8 KiB of stdout and stderr, for messages. */
  output(): string;
  /** Set once the process has exited (code or signal). */
  exited(): string | undefined;
  /** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

/** Starts `bin` in the foreground (it must not daemonize) with its output captured. */
export function startPeerProcess(bin: string, args: string[]): PeerProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exit: string | undefined;
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const gone = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve();
    });
    child.once('error', (e) => {
      exit = `could not start ${bin}: ${e.message}`;
      resolve();
    });
  });
  return {
    child,
    output: () => output,
    exited: () => exit,
    stop: async () => {
      if (exit === undefined && child.pid !== undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(timer);
      }
    },
  };
}

/** A UDP port on `host` that nothing is bound to right now (the kernel's pick). */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const { port } = socket.address() as AddressInfo;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Whether `port` on `host` can be bound for UDP right now. */
export async function udpPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  const socket = dgram.createSocket('udp4');
  const ok = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return ok;
}

/** Sends `request` to `host:port` and resolves with the first reply, or undefined after `ms`. */
export function udpAsk(
  host: string,
  port: number,
  request: Uint8Array,
  ms: number,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const done = (reply: Buffer | undefined) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), ms);
    socket.on('error', () => undefined);
    socket.on('message', (msg) => done(msg));
    socket.send(request, port, host);
  });
}

/**
 * Polls `ready` every 100 ms until it is true; fails with the daemon's output when the daemon
 * exits first or `ms` pass.
 */
export async function waitForPeer(
  peer: PeerProcess,
  what: string,
  ready: () => Promise<boolean>,
  ms = 15_000,
) {
  const end = Date.now() + ms;
  for (;;) {
    const exit = peer.exited();
    if (exit !== undefined) throw new Error(`${what} did not start (${exit}):\n${peer.output()}`);
    if (await ready()) return;
    if (Date.now() > end) throw new Error(`${what} did not answer within ${ms} ms:\n${peer.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
