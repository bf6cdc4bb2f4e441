/**
 * The agent's Node options and environment are chosen for its memory (scripts/sim/boot-emulator.ts
 * says why); the appliance's unit, the bin shim and the simulator (tests, `make bench`) must run it
 * the same way — the same options, the same bundled file — or the benchmark measures another
 * program than the one that ships.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AGENT_ENV,
  AGENT_MAIN,
  AGENT_NODE_OPTIONS,
  CONSOLE_NODE_OPTIONS,
  PORTAL_MAIN,
  PORTAL_NODE_OPTIONS,
} from '../../../scripts/sim/boot-emulator.js';
import { REPO } from '../../support/appliance.js';

describe("the agent's runtime", () => {
  it('the systemd unit starts node with AGENT_NODE_OPTIONS and sets AGENT_ENV', async () => {
    const unit = await fs.readFile(path.join(REPO, 'image/systemd/clgw-agent.service'), 'utf8');
    const exec = /^ExecStart=\/usr\/bin\/node (.*) (\S+)$/m.exec(unit);
    expect(exec?.[1]?.split(' ')).toEqual(AGENT_NODE_OPTIONS);
    expect(exec?.[2]).toBe(`/usr/lib/clgw/${path.relative(REPO, AGENT_MAIN)}`);
    for (const [name, value] of Object.entries(AGENT_ENV))
      expect(unit).toContain(`\nEnvironment=${name}=${value}\n`);
  });

  it('the bin shim passes the same options to the same file', async () => {
    const shim = await fs.readFile(path.join(REPO, 'agent/bin/clgw-agent.js'), 'utf8');
    expect(shim.split('\n')[0]).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_OPTIONS.join(' ')}`);
    expect(shim).toContain(`\nimport '../${path.relative(path.join(REPO, 'agent'), AGENT_MAIN)}';\n`);
  });
});

describe("the portal's runtime", () => {
  it('the systemd unit, the bin shim and the simulator run the same bundle with the same options', async () => {
    const unit = await fs.readFile(path.join(REPO, 'image/systemd/clgw-portal.service'), 'utf8');
    const exec = /^ExecStart=\/usr\/bin\/node (.*) (\S+)$/m.exec(unit);
    expect(exec?.[1]?.split(' ')).toEqual(PORTAL_NODE_OPTIONS);
    expect(exec?.[2]).toBe(`/usr/lib/clgw/${path.relative(REPO, PORTAL_MAIN)}`);
    const shim = await fs.readFile(path.join(REPO, 'portal/bin/clgw-portal.js'), 'utf8');
    expect(shim.split('\n')[0]).toBe(`#!/usr/bin/env -S node ${PORTAL_NODE_OPTIONS.join(' ')}`);
    expect(shim).toContain(`\nimport '../${path.relative(path.join(REPO, 'portal'), PORTAL_MAIN)}';\n`);
  });
});

describe("the consoles' runtime", () => {
  it('both units and the bin shim run the bundled console with CONSOLE_NODE_OPTIONS', async () => {
    const bundle = '/usr/lib/clgw/console-tui/dist/clgw-console.mjs';
    for (const [unit, screen] of [
      ['clgw-console-home.service', 'home'],
      ['clgw-console-menu.service', 'menu'],
    ] as const) {
      const text = await fs.readFile(path.join(REPO, 'image/systemd', unit), 'utf8');
      const exec = /^ExecStart=\/usr\/bin\/node (.*) (\S+) (\S+)$/m.exec(text);
      expect(exec?.[1]?.split(' '), unit).toEqual(CONSOLE_NODE_OPTIONS);
      expect(exec?.[2], unit).toBe(bundle);
      expect(exec?.[3], unit).toBe(screen);
    }
    const shim = await fs.readFile(path.join(REPO, 'console-tui/bin/clgw-console.js'), 'utf8');
    expect(shim.split('\n')[0]).toBe(`#!/usr/bin/env -S node ${CONSOLE_NODE_OPTIONS.join(' ')}`);
    expect(shim).toContain("\nimport '../dist/clgw-console.mjs';\n");
  });
});
