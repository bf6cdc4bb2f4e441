/**
 * Staged rollout on the loopback mirror: a release published by `clgw-release` with a rollout
 * percentage is taken only by the appliances whose bucket (their appliance ID hashed with the
 * release's salt) lies below it; the others end the check idle with `notOffered`, nothing
 * downloaded, and `--force` takes it anyway.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { inRollout, rolloutBucket } from '@clgw/core/release/rollout.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { isApplianceId } from '@clgw/core/ssh/principal.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkForRelease } from '../../../agent/src/actors/check.js';
import { startApiServer } from '../../../agent/src/api/server.js';
import { describeCheck } from '../../../agent/src/check-words.js';
import { initialJournal } from '../../../agent/src/machine/journal.js';
import { setRollout } from '../../../image/src/release/index.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  testKeys,
  until,
  type World,
} from '../../support/appliance.js';
import { runClgw, unwrap } from '../../support/cli.js';

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

/** Publishes 1.1.0 for every platform, then puts it under a rollout with the release tool. */
async function publishRolledOut(w: World, percent: number, salt = 'wave-1'): Promise<void> {
  await w.publish('1.1.0');
  await setRollout({ tree: w.tree, keys: w.keys, platforms: ['physical', 'virtual', 'kvm'], percent, salt });
}

/** SHA-256 of every slot and of grubenv: a check that is not offered a release touches none of them. */
async function slotsAndGrubenv(w: World): Promise<Record<string, string>> {
  const out = await fingerprint(w.paths);
  for (const kind of ['boot', 'root'] as const) {
    out[`${kind}_b`] = createHash('sha256')
      .update(await fs.readFile(w.paths.partition(kind, 'B')))
      .digest('hex');
  }
  return out;
}

describe('staged rollout', () => {
  it('0 %: nothing is offered (idle, notOffered, slots and grubenv untouched); --force takes it', async () => {
    world = await makeWorld();
    await publishRolledOut(world, 0);
    running = await startAgent(world);
    const before = await slotsAndGrubenv(world);

    const api = await startApiServer(running.agent, world.paths.socket, running.deps.log);
    try {
      // `clgw update` without --force: the sentence and the way to take it now; exit 0.
      const update = await runClgw(world.root, ['update'], 30_000);
      expect(update.code, update.stderr).toBe(0);
      expect(unwrap(update.stdout)).toContain(
        'gateway OS 1.1.0 is available but not yet offered to this gateway (rollout 0 %)\n"clgw update --force" installs it now',
      );
      const status = await running.agent.status();
      expect(status.state).toBe('idle');
      expect(status.check).toMatchObject({ outcome: 'notOffered', version: '1.1.0', percent: 0 });
      expect(status.target).toBeNull();
      expect(describeCheck(status)).toEqual({
        severity: 'ok',
        text: 'Release 1.1.0 is available but not yet offered to this gateway (rollout 0 %)',
      });
      expect(unwrap((await runClgw(world.root, ['status'])).stdout)).toMatch(
        /last check: +Release 1\.1\.0 is available but not yet offered to this gateway \(rollout 0 %\)/,
      );
    } finally {
      await api.close();
    }
    // Persisted as it ended (an agent restarted now shows the same), and nothing was fetched but
    // the document: no artifact, no slot written, the boot environment as it was.
    const journal = await until(async () => {
      const j = JSON.parse(await fs.readFile(world!.paths.journal, 'utf8'));
      return j.state === 'idle' && j.check?.outcome === 'notOffered' ? j : undefined;
    }, 'the notOffered check to be persisted');
    expect(journal.target).toBeUndefined();
    expect(world.mirror.paths().filter((p) => p.startsWith('/releases/'))).toEqual([]);
    expect(await slotsAndGrubenv(world)).toEqual(before);
    expect(isApplianceId((await fs.readFile(world.paths.applianceId, 'utf8')).trim())).toBe(true);

    // The technician's `clgw update --force` (POST /v1/update {force: true}) takes it at 0 %.
    await running.agent.request({ type: 'update', force: true });
    await until(() => running!.reboots.length > 0, 'the forced update to ask for a reboot');
    expect(Object.fromEntries(await readGrubenv(world.paths.grubenv))).toMatchObject({
      ORDER: 'B A',
      B_OK: '1',
    });
    expect((await running.agent.status()).target?.version).toBe('1.1.0');

    // The decision is logged with its bucket and percentage, never the appliance ID.
    await running.stop();
    running = undefined;
    const id = (await fs.readFile(world.paths.applianceId, 'utf8')).trim();
    const log = await fs.readFile(world.paths.logFile, 'utf8');
    const lines = log
      .split('\n')
      .filter((l) => l.includes('"staged rollout"'))
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatchObject({
      version: '1.1.0',
      percent: 0,
      bucket: rolloutBucket('wave-1', id),
      offered: false,
    });
    expect(lines.at(-1)).toMatchObject({ offered: false, forced: true });
    expect(log).not.toContain(id);
  });

  it('0 %, 50 %, 100 %: 40 appliances, each with a fresh data partition, take it as their buckets say', async () => {
    world = await makeWorld();
    await publishRolledOut(world, 0);
    running = await startAgent(world);
    const before = await slotsAndGrubenv(world);
    const deps = running.deps;

    /** One appliance's check (the agent's own, from its data partition's ID) — offered or not. */
    const check = async (id: string | undefined) => {
      if (id === undefined) await fs.rm(deps.paths.applianceId, { force: true });
      else await fs.writeFile(deps.paths.applianceId, `${id}\n`);
      const journal = { ...initialJournal(deps.clock.now()), install: true, trigger: 'user' as const };
      const outcome = await checkForRelease(deps, journal, AbortSignal.timeout(30_000));
      return { id: (await fs.readFile(deps.paths.applianceId, 'utf8')).trim(), outcome };
    };

    // At 0 % nobody: 40 fresh data partitions, each making its own appliance ID at its check.
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { id, outcome } = await check(undefined);
      expect(outcome).toEqual({ kind: 'notOffered', version: '1.1.0', percent: 0 });
      ids.push(id);
    }
    expect(new Set(ids).size).toBe(40);

    // At 50 %: about half — exactly those whose bucket is below 5000.
    await setRollout({ tree: world.tree, keys: world.keys, platforms: ['virtual'], percent: 50 });
    const offeredAt50: string[] = [];
    for (const id of ids) {
      const { outcome } = await check(id);
      if (outcome.kind === 'available') offeredAt50.push(id);
      else expect(outcome).toEqual({ kind: 'notOffered', version: '1.1.0', percent: 50 });
    }
    const predicted = ids.filter((id) => inRollout(rolloutBucket('wave-1', id), 50));
    expect(offeredAt50).toEqual(predicted);
    expect(offeredAt50.length).toBeGreaterThanOrEqual(10);
    expect(offeredAt50.length).toBeLessThanOrEqual(30);

    // At 100 %: everybody — and nobody offered at 50 % lost it (same salt, higher percentage).
    await setRollout({ tree: world.tree, keys: world.keys, platforms: ['virtual'], percent: 100 });
    for (const id of ids) expect((await check(id)).outcome.kind).toBe('available');

    // Checks only: no appliance wrote a slot or the boot environment.
    expect(await slotsAndGrubenv(world)).toEqual(before);
  });

  it('a corrupt appliance ID is replaced by a new one, with a warning, and the check goes on', async () => {
    world = await makeWorld();
    await publishRolledOut(world, 100);
    running = await startAgent(world);
    await fs.writeFile(world.paths.applianceId, 'not an id\n');
    const journal = { ...initialJournal(Date.now()), install: false, trigger: 'user' as const };
    const outcome = await checkForRelease(running.deps, journal, AbortSignal.timeout(30_000));
    expect(outcome.kind).toBe('available');
    expect(isApplianceId((await fs.readFile(world.paths.applianceId, 'utf8')).trim())).toBe(true);
    await running.deps.log.flush();
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain(
      'appliance ID was missing or invalid: made a new one (the rollout cohort may change)',
    );
  });

  it('the release tool refuses a bad percentage or salt before writing anything', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const compat = await fs.readFile(`${world.tree}/compat.yaml`);
    const set = (percent: number, salt?: string) =>
      setRollout({
        tree: world!.tree,
        keys: world!.keys,
        platforms: ['virtual'],
        percent,
        ...(salt ? { salt } : {}),
      });
    const invalid = (field: string) => ({ code: 'COMPAT_INVALID', message: expect.stringContaining(field) });
    await expect(set(12.345)).rejects.toMatchObject(
      invalid('platforms.virtual.release.rollout.percent: expected at most two decimals'),
    );
    await expect(set(10, 'two words')).rejects.toMatchObject(
      invalid('platforms.virtual.release.rollout.salt: expected 1 to 64 printable characters'),
    );
    expect(await fs.readFile(`${world.tree}/compat.yaml`)).toEqual(compat);
    // The salt defaults to the version; raising the percentage keeps it (and so the cohorts);
    // clearing the rollout offers the release to all. Each is a new, signed document.
    await expect(set(10)).resolves.toMatchObject({ changes: [{ after: { percent: 10, salt: '1.1.0' } }] });
    await expect(set(20)).resolves.toMatchObject({
      changes: [{ before: { percent: 10, salt: '1.1.0' }, after: { percent: 20, salt: '1.1.0' } }],
    });
    const cleared = await setRollout({
      tree: world.tree,
      keys: world.keys,
      platforms: ['virtual'],
      percent: null,
    });
    expect(cleared.compat.platforms.virtual?.release.rollout).toBeUndefined();
    expect(cleared.compat.platforms.kvm?.release.rollout).toBeUndefined();
    expect(cleared.compat.serial).toBe(4);
  });
});
