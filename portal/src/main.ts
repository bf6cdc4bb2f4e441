#!/usr/bin/env node
/**
 * `clgw-portal`: the local web page (SPEC.md §5, §9) as its own unprivileged process. On the
 * appliance systemd listens on port 80 and passes the socket (clgw-portal.socket: no capability
 * needed); elsewhere `--listen HOST:PORT` (port 0: a free one; the URL is logged). It reaches the
 * agent only through `run/clgw/portal.sock` under `CLGW_ROOT` and writes no files; its log is one
 * JSON object a line on standard output (the journal on the appliance).
 *
 * A crash here touches nothing of the agent's: the unit restarts the portal alone.
 */
import path from 'node:path';
import type { Logger, LogLevel } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { PortalAgentClient } from './agent-client.js';
import { type PortalOptions, startPortal } from './server.js';

function stdoutLogger(): Logger {
  const at = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
  return {
    debug: () => undefined,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    flush: async () => {},
  };
}

/** `--listen 127.0.0.1:8080`, `--listen [::]:80`; absent: systemd's socket. */
function parseListen(argv: string[]): { host: string; port: number } | undefined {
  const i = argv.indexOf('--listen');
  if (i < 0) return undefined;
  const value = argv[i + 1] ?? '';
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    process.stderr.write(`clgw-portal: --listen takes HOST:PORT (e.g. 127.0.0.1:8080), not "${value}"\n`);
    process.exit(2);
  }
  return { host: m[1] ?? m[2]!, port };
}

/**
 * `--update-ms N`, `--ping-ms N`, `--rate-limit N` (POSTs a minute per address), `--max-streams N`,
 * `--max-connections N`: tuning for development and tests (the appliance runs the defaults).
 */
function tuning(argv: string[]): Partial<PortalOptions> {
  const int = (flag: string): number | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(
        `clgw-portal: ${flag} takes a positive whole number, not "${argv[i + 1] ?? ''}"\n`,
      );
      process.exit(2);
    }
    return n;
  };
  const rate = int('--rate-limit');
  const out: Partial<PortalOptions> = {
    updateMs: int('--update-ms'),
    pingMs: int('--ping-ms'),
    maxStreams: int('--max-streams'),
    maxConnections: int('--max-connections'),
    ...(rate ? { rateLimit: { max: rate, windowMs: 60_000 } } : {}),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

/** The first socket systemd passed (sd_listen_fds(3): fd 3, when LISTEN_PID is this process). */
function systemdSocket(): number | undefined {
  if (process.env.LISTEN_PID !== String(process.pid)) return undefined;
  return Number(process.env.LISTEN_FDS ?? 0) >= 1 ? 3 : undefined;
}

async function main(): Promise<void> {
  const log = stdoutLogger();
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const address = parseListen(process.argv.slice(2));
  const fd = address ? undefined : systemdSocket();
  if (!address && fd === undefined) {
    process.stderr.write('clgw-portal: no socket from systemd and no --listen HOST:PORT\n');
    process.exit(2);
  }
  const agent = new PortalAgentClient(paths.portalSocket);
  const argv = process.argv.slice(2);
  const portal = await startPortal({ ...tuning(argv), listen: address ?? { fd: fd! }, agent, log });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info(`portal stopping (${sig})`);
      void portal.close().then(() => {
        agent.close();
        process.exit(0);
      });
    });
  }
  log.info('portal started', {
    agentSocket: path.relative(paths.root, paths.portalSocket) || paths.portalSocket,
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`clgw-portal: ${(e as Error).message}\n`);
  process.exit(1);
});
