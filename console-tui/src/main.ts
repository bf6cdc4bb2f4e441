#!/usr/bin/env node
/**
 * `clgw-console home|menu` — the local console: the home screen on tty1, the menu on tty2.
 * A client of the agent's local API (CLGW_ROOT selects the appliance root, default `/`); it never
 * writes appliance state itself. It must never drop the technician to a shell prompt: every error
 * is caught, logged to `var/log/clgw/console.log` and the screen redrawn; systemd restarts it
 * should it exit all the same.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentClient } from '@clgw/agent/api/client.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import type { ConsoleDeps } from './ui/deps.js';
import { HomeScreen } from './ui/home.js';
import { MenuScreen } from './ui/menu.js';
import { createScreen } from './ui/screen.js';

const USAGE = 'usage: clgw-console home|menu   (environment: CLGW_ROOT, TERM)';

/** Non-loopback IPv4 addresses of this machine (a DHCP lease included). */
function lanAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
}

function main(): void {
  const which = process.argv[2];
  if (which !== 'home' && which !== 'menu') {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const logFile = path.join(paths.logDir, 'console.log');
  const log = (line: string) => {
    try {
      mkdirSync(paths.logDir, { recursive: true });
      appendFileSync(logFile, `${new Date().toISOString()} clgw-console ${which}: ${line}\n`);
    } catch {
      // The screen matters more than the log; a full or read-only disk must not end the console.
    }
  };
  // Status answers at once; building a log archive may take minutes with nothing sent meanwhile.
  const quick = new AgentClient(paths.socket, 30_000);
  const patient = new AgentClient(paths.socket, 310_000);
  const client = Object.assign(Object.create(quick) as AgentClient, {
    createLogLink: () => patient.createLogLink(),
  });
  const deps: ConsoleDeps = {
    client,
    addresses: lanAddresses,
    refreshMs: 1000,
  };
  const screen = createScreen({ title: which === 'home' ? 'CloudLink Gateway' : 'CloudLink Gateway menu' });
  const view = which === 'home' ? new HomeScreen(screen, deps) : new MenuScreen(screen, deps);
  const recover = (what: string) => (e: unknown) => {
    log(`${what}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    try {
      screen.render();
    } catch {
      // Redrawing failed too; the next refresh tries again.
    }
  };
  process.on('uncaughtException', recover('uncaught exception'));
  process.on('unhandledRejection', recover('unhandled rejection'));
  // A hang-up or terminate from systemd ends the console cleanly; Ctrl-C and Ctrl-Z do nothing.
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      view.stop();
      screen.destroy();
      process.exit(0);
    });
  }
  view.start();
}

main();
