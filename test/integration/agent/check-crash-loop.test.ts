/**
 * A signed compat.yaml must not be able to take the agent down, and a check the agent keeps dying
 * in must not be resumed at every start for good (issue #19). Where the process matters, the real
 * agent runs as on the appliance: its 48 MiB heap, restarted by the boot emulator when it dies.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { writeJsonAtomic } from '../../../agent/src/platform/atomic.js';
import type { Status } from '../../../agent/src/status.js';
import { signDocument } from '../../../image/src/release/index.js';
import { AGENT_MAIN, runAppliance } from '../../../scripts/sim/boot-emulator.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  until,
  type World,
} from '../../support/appliance.js';

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await appliance?.stop();
  await world?.close();
  running = undefined;
  appliance = undefined;
  world = undefined;
});

async function sign(w: World, text: string): Promise<void> {
  await fs.writeFile(path.join(w.tree, 'compat.yaml'), text);
  await fs.writeFile(path.join(w.tree, 'compat.yaml.sig'), signDocument(Buffer.from(text), w.keys));
}

/** Both slots, grubenv, and what the data partition keeps about updates. */
async function untouched(w: World): Promise<Record<string, string>> {
  const out = await fingerprint(w.paths);
  const files = {
    boot_b: w.paths.partition('boot', 'B'),
    root_b: w.paths.partition('root', 'B'),
    history: w.paths.history,
    slotStatus: w.paths.slotStatus,
  };
  for (const [name, file] of Object.entries(files)) {
    const bytes = await fs.readFile(file).catch(() => undefined);
    out[name] = bytes ? createHash('sha256').update(bytes).digest('hex') : 'absent';
  }
  return out;
}

const journalOf = async (w: World) => JSON.parse(await fs.readFile(w.paths.journal, 'utf8'));

describe('a compat.yaml built to exhaust the parser', () => {
  it('nested 40,000 deep and signed: refused with YAML_INVALID, and the agent stays up', async () => {
    await fs.access(AGENT_MAIN); // built by `make test`
    world = await makeWorld({ boot: false });
    const w = world;
    appliance = runAppliance({ root: w.root, say: () => undefined, portal: false });
    const client = new AgentClient(w.paths.socket, 60_000);
    await until(async () => (await client.status()).state === 'idle', 'the agent to start');
    const pid = appliance.agentPid();
    const before = await untouched(w);

    // 80 KB, far under the 256 KiB size limit; the tree the parser built for it took more than
    // the agent's whole heap.
    const deep = `schema: 1\nx: ${'['.repeat(40_000)}${']'.repeat(40_000)}\n`;
    await sign(w, deep);
    await client.post('/v1/update').catch(() => undefined);
    const status = await until<Status>(async () => {
      const s = await client.status();
      return s.state === 'idle' && s.check?.outcome === 'failed' ? s : undefined;
    }, 'the check to be refused');
    expect(status.check?.error?.code).toBe('YAML_INVALID');
    expect(status.check?.message).toBe(
      'compat.yaml is not allowed: nesting deeper than 16 levels (level 17 opens here) at line 2, column 20',
    );
    expect(appliance.agentPid()).toBe(pid);
    expect(appliance.boots()).toBe(1);
    expect(await untouched(w)).toEqual(before);
    expect((await journalOf(w)).check.error.code).toBe('YAML_INVALID');
  });
});

describe('a check that never ends', () => {
  it('a journal left checking with the count at its limit: the start gives the check up', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    // A first start marks the booted slot good (grubenv, slot status), as every boot's does.
    await (await startAgent(world)).stop();
    await writeJsonAtomic(world.paths.journal, {
      schema: 1,
      state: 'checking',
      trigger: 'boot',
      install: true,
      force: false,
      checkAttempts: 3,
      updatedAt: new Date().toISOString(),
    });
    const before = await untouched(world);
    running = await startAgent(world);
    expect(running.agent.state).toBe('idle');
    const status = await running.agent.status();
    expect(status.check).toMatchObject({
      outcome: 'failed',
      error: { code: 'CHECK_INTERRUPTED', details: { attempts: 3 } },
    });
    expect(status.error).toBeNull();
    expect(status.result).toBeNull();
    expect(status.bootedSlot).toBe('A');
    const journal = await until(async () => {
      const j = await journalOf(world!);
      return j.state === 'idle' ? j : undefined;
    }, 'idle to be persisted');
    expect(journal.check.error.code).toBe('CHECK_INTERRUPTED');
    expect(journal.checkAttempts).toBeUndefined();
    expect(world.mirror.stats('/compat.yaml').requests).toBe(0);
    expect(await untouched(world)).toEqual(before);
  });
});
