/**
 * A real NTP server for tests: Debian's chronyd on a free 127.0.0.1 UDP port, configured from a
 * temp directory. `-x` keeps it off the machine's clock; `local stratum 8` makes it serve its own
 * clock at once (no upstream sources); the command sockets are off and the PID and drift files
 * live in the temp directory, so nothing outside it is touched and runs never clash.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freeUdpPort, type PeerProcess, startPeerProcess, udpAsk, waitForPeer } from './peer-process.js';

export interface TestNtpServer {
  host: string;
  port: number;
  /** `127.0.0.1:<port>`, as the diagnostics' `ntpServer` takes it. */
  address: string;
  close(): Promise<void>;
}

/** A raw SNTP client request (mode 3), independent of the code under test. */
function readinessRequest(): Uint8Array {
  const request = new Uint8Array(48);
  request[0] = 0x23;
  return request;
}

/** Starts chronyd; fails with its output when it will not serve (a missing chronyd is a failure). */
export async function startNtpServer(): Promise<TestNtpServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-chronyd-'));
  let lastError: unknown;
  // A port picked free can be taken before chronyd binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeUdpPort();
    const conf = path.join(dir, 'chrony.conf');
    await fs.writeFile(
      conf,
      [
        `port ${port}`,
        'bindaddress 127.0.0.1',
        'local stratum 8',
        'allow 127.0.0.1',
        // No chronyc access: no UDP command port, no unix socket under /run/chrony.
        'cmdport 0',
        'bindcmdaddress /',
        `pidfile ${path.join(dir, 'chronyd.pid')}`,
        `driftfile ${path.join(dir, 'drift')}`,
        '',
      ].join('\n'),
    );
    // As root chronyd would drop to _chrony, which cannot read our 0700 temp dir; -U lets a
    // non-root user run it (it needs no privilege with -x and an unprivileged port).
    const user = process.getuid?.() === 0 ? ['-u', 'root'] : ['-U'];
    const peer: PeerProcess = startPeerProcess('chronyd', ['-f', conf, '-x', '-d', '-L', '0', ...user]);
    try {
      await waitForPeer(peer, `chronyd on 127.0.0.1:${port}`, async () => {
        const reply = await udpAsk('127.0.0.1', port, readinessRequest(), 200);
        return reply !== undefined && reply.length >= 48 && (reply[0]! & 0x07) === 4;
      });
      return {
        host: '127.0.0.1',
        port,
        address: `127.0.0.1:${port}`,
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
