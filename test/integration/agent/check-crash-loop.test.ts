/**
 * A signed compat.yaml must not be able to take the agent down, and a check the agent keeps dying
 * in must not be resumed at every start for good (issue #19). Where the process matters, the real
 * agent runs as on the appliance: its 48 MiB heap, restarted by the boot emulator when it dies.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
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

  // Four starts of the real agent process: on a loaded machine each can take ten seconds and more,
  // and the default 60 s ran out once (a QEMU run beside make test).
  it('cut off at three starts in a row: the next start gives it up, shows why, and stays up', async () => {
    await fs.access(AGENT_MAIN);
    // A release the boot-time check would install, served so slowly that the check never ends.
    world = await makeWorld({ config: { updateAtBoot: true, http: { retries: 0 } }, boot: false });
    const w = world;
    await w.publish('1.1.0');
    w.mirror.setFault('/compat.yaml', { drip: 1 });
    appliance = runAppliance({ root: w.root, say: () => undefined, portal: false });

    let before: Record<string, string> | undefined;
    for (let attempt = 1; attempt <= 3; attempt++) {
      // Under way: persisted with its count, and compat.yaml asked for.
      await until(async () => {
        const j = await journalOf(w);
        return (
          j.state === 'checking' &&
          j.checkAttempts === attempt &&
          w.mirror.stats('/compat.yaml').requests >= attempt
        );
      }, `check attempt ${attempt} to be under way`);
      // After the first start has marked the booted slot good, as every start does.
      before ??= await untouched(w);
      const pid = appliance.agentPid();
      expect(pid).toBeDefined();
      process.kill(pid!, 'SIGKILL');
      await until(() => appliance!.agentPid() !== undefined && appliance!.agentPid() !== pid, 'a restart');
    }

    const client = new AgentClient(w.paths.socket, 10_000);
    const status = await until<Status>(async () => {
      const s = await client.status();
      return s.check?.error?.code === 'CHECK_INTERRUPTED' ? s : undefined;
    }, 'the check to be given up');
    expect(status.state).toBe('idle');
    expect(status.check).toMatchObject({
      outcome: 'failed',
      message:
        'the check of compat.yaml was interrupted 3 times in a row (the agent stopped during it each time), so it was given up',
    });
    // Persisted, and the boot-time check not begun again (it would only repeat the loop).
    const j = await until(async () => {
      const journal = await journalOf(w);
      return journal.state === 'idle' ? journal : undefined;
    }, 'idle to be persisted');
    expect(j.check.error.code).toBe('CHECK_INTERRUPTED');
    expect(j.checkAttempts).toBeUndefined();
    await until(
      async () => (await fs.readFile(w.paths.logFile, 'utf8')).includes('boot-time update skipped'),
      'the boot-time update to be skipped',
    );
    expect(w.mirror.stats('/compat.yaml').requests).toBe(3);
    const pid = appliance.agentPid();
    await new Promise((r) => setTimeout(r, 1000));
    expect(appliance.agentPid()).toBe(pid);
    expect((await client.status()).state).toBe('idle');
    expect(appliance.boots()).toBe(1);
    expect(await untouched(w)).toEqual(before);
  }, 240_000);
});
