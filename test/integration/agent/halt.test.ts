/**
 * Halt on the loopback mirror: a release the vendor withdraws (`clgw-release withdraw`, the
 * library's setWithdrawn) is not downloaded by a box below it, is discarded by one that has
 * downloaded it but not switched (the last look before the switch), and is kept by one running it.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeCheck } from '../../../agent/src/check-words.js';
import type { Journal } from '../../../agent/src/machine/journal.js';
import { setWithdrawn } from '../../../image/src/release/index.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  testImages,
  testKeys,
  until,
  type World,
} from '../../support/appliance.js';

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

beforeAll(() => {
  testKeys();
});

const REASON = 'calls drop after 20 minutes on SIP trunks';

async function withdraw(w: World): Promise<void> {
  await setWithdrawn({
    tree: w.tree,
    keys: w.keys,
    platforms: ['physical', 'virtual', 'kvm'],
    reason: REASON,
  });
}

/** The persisted journal, once `ready` holds for it. */
async function persisted(w: World, ready: (j: Journal) => boolean, what: string): Promise<Journal> {
  return until(async () => {
    const j = JSON.parse(await fs.readFile(w.paths.journal, 'utf8')) as Journal;
    return ready(j) ? j : undefined;
  }, what);
}

describe('halt', () => {
  it('before download: nothing offered, not even forced; nothing fetched but compat.yaml', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    await withdraw(world);
    running = await startAgent(world);
    const before = await fingerprint(world.paths);
    const slotB = createHash('sha256')
      .update(await fs.readFile(world.paths.partition('root', 'B')))
      .digest('hex');

    let last: string | undefined;
    for (const force of [false, true]) {
      await running.agent.request({ type: 'update', force });
      const j = await persisted(
        world,
        (j) => j.state === 'idle' && j.check?.outcome === 'withdrawn' && j.check.at !== last,
        'the withdrawn check',
      );
      last = j.check?.at;
      const status = await running.agent.status();
      expect(status.target).toBeNull();
      expect(status.check).toMatchObject({
        outcome: 'withdrawn',
        version: '1.1.0',
        message: `gateway OS 1.1.0 was withdrawn by the vendor (${REASON}): not installed`,
      });
      expect(describeCheck(status)?.severity).toBe('warn');
    }
    expect(world.mirror.paths().filter((p) => p.startsWith('/releases/'))).toEqual([]);
    expect(await fingerprint(world.paths)).toEqual(before);
    expect(
      createHash('sha256')
        .update(await fs.readFile(world.paths.partition('root', 'B')))
        .digest('hex'),
    ).toBe(slotB);
    expect(running.reboots).toEqual([]);
  });

  it('after download, before the switch: the last look discards it; grubenv and slot A untouched', async () => {
    // A paced mirror keeps the download going long enough to withdraw the release meanwhile.
    world = await makeWorld({ mirrorRate: 1024 * 1024 });
    await world.publish('1.1.0');
    running = await startAgent(world);
    const before = await fingerprint(world.paths);

    await running.agent.request({ type: 'update' });
    await persisted(world, (j) => j.state === 'downloading', 'the download to start');
    await withdraw(world);

    const journal = await persisted(
      world,
      (j) => j.state === 'idle' && j.result !== undefined,
      'the update to end idle with a result',
    );
    expect(journal.target).toBeUndefined();
    expect(journal.result).toMatchObject({
      outcome: 'halted',
      version: '1.1.0',
      message: `the vendor withdrew 1.1.0 before this gateway switched to it (${REASON}): discarded`,
    });
    expect(journal.error).toBeUndefined();
    // It had written the release (the artifacts were fetched), but never switched or rebooted.
    expect(world.mirror.paths().some((p) => p.startsWith('/releases/1.1.0/'))).toBe(true);
    expect(running.reboots).toEqual([]);
    expect(await fingerprint(world.paths)).toEqual(before);
    const status = await running.agent.status();
    expect(status.state).toBe('idle');
    await running.deps.log.flush();
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain(
      'last look before switching: the release is no longer offered; discarding it',
    );
  });

  it('after the switch: a box running the withdrawn release keeps it, and says so', async () => {
    world = await makeWorld({ factory: await testImages('1.1.0') });
    await world.publish('1.1.0');
    await withdraw(world);
    running = await startAgent(world);
    const before = await fingerprint(world.paths);

    await running.agent.request({ type: 'update' });
    await persisted(
      world,
      (j) => j.state === 'idle' && j.check?.outcome === 'withdrawn',
      'the withdrawn check',
    );
    const status = await running.agent.status();
    expect(status.check?.message).toBe(
      `gateway OS 1.1.0 was withdrawn by the vendor (${REASON}); this gateway keeps running it until a newer release is published`,
    );
    expect(describeCheck(status)).toEqual({ severity: 'warn', text: `G${status.check!.message.slice(1)}` });
    expect(world.mirror.paths().filter((p) => p.startsWith('/releases/'))).toEqual([]);
    expect(await fingerprint(world.paths)).toEqual(before);
  });

  it('by removal: a box running a release no longer published keeps it, and says so (no downgrade)', async () => {
    world = await makeWorld({ factory: await testImages('1.1.0') });
    // The vendor re-publishes the previous release instead of 1.1.0.
    await world.publish('1.0.0');
    running = await startAgent(world);
    const before = await fingerprint(world.paths);

    await running.agent.request({ type: 'update' });
    await persisted(world, (j) => j.state === 'idle' && j.check?.published === '1.0.0', 'the check');
    const status = await running.agent.status();
    expect(status.check).toMatchObject({ outcome: 'upToDate', version: '1.1.0', published: '1.0.0' });
    expect(describeCheck(status)).toEqual({
      severity: 'warn',
      text: 'This gateway runs gateway OS 1.1.0, newer than 1.0.0 that the vendor publishes now; it keeps running it until a newer release is published',
    });
    expect(status.result).toBeNull();
    expect(world.mirror.paths().filter((p) => p.startsWith('/releases/'))).toEqual([]);
    expect(await fingerprint(world.paths)).toEqual(before);
  });
});
