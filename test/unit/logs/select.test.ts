/**
 * The log archive's pure rules: which state records it names, what it says it never takes, and
 * how files are fitted under the size cap.
 */
import path from 'node:path';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { describe, expect, it } from 'vitest';
import { archiveName, fitNewestFirst, neverIncluded, stateRecords } from '../../../agent/src/logs/select.js';

const paths = appliancePaths('/tmp/appliance');

describe('log archive selection', () => {
  it('names state records only, none under a secret or bulk directory, by relative names', () => {
    const records = stateRecords(paths);
    expect(records.map((r) => r.name)).toEqual([
      'var/clgw/update-journal.json',
      'var/clgw/history.json',
      'var/clgw/slot-status.json',
      'var/clgw/alarms.json',
      'var/clgw/containers.json',
      'var/clgw/diagnostics.json',
      'var/clgw/schedule.json',
      'var/clgw/firstboot.json',
      'var/clgw/recovery.json',
      'var/clgw/ssh.json',
      'var/clgw/network/settings.json',
      'var/clgw/network/10-clgw.network',
      'var/clgw/network/hostname',
    ]);
    const secret = [
      paths.sshDir,
      paths.onboardingDir,
      paths.containerData,
      paths.containerStorage,
      paths.containerArchives,
    ];
    for (const r of records) {
      expect(r.file).toBe(path.join(paths.root, r.name));
      expect(r.file).not.toBe(paths.proxy);
      for (const dir of secret) expect(r.file.startsWith(`${dir}/`), `${r.file} under ${dir}`).toBe(false);
    }
  });

  it('lists what is never taken, by category', () => {
    expect(neverIncluded(paths).map((n) => n.name)).toEqual([
      'var/clgw/ssh/',
      'var/clgw/proxy.json',
      'var/clgw/onboarding/',
      'var/clgw/containers/data/',
      'var/clgw/containers/storage/',
      'var/clgw/containers/archives/',
      'var/clgw/chunk-index/',
      'var/clgw/',
    ]);
  });

  it('names files relative to the root, also when the root is /', () => {
    expect(archiveName('/tmp/appliance', '/tmp/appliance/var/log/clgw/clgw.log')).toBe(
      'var/log/clgw/clgw.log',
    );
    expect(archiveName('/', '/var/clgw/history.json')).toBe('var/clgw/history.json');
    expect(() => archiveName('/tmp/appliance', '/tmp/appliancex/var/clgw/a')).toThrow(/not under/);
    expect(() => archiveName('/tmp/appliance', '/tmp/appliance/')).toThrow(/not under/);
  });

  it('fits newest first, skips what does not fit with the reason, and lets smaller older files in', () => {
    const items = [
      { name: 'old-small', size: 10, mtimeMs: 1 },
      { name: 'new', size: 50, mtimeMs: 3 },
      { name: 'mid-big', size: 60, mtimeMs: 2 },
    ];
    const fit = fitNewestFirst(items, 100, 200);
    expect(fit.taken.map((t) => t.name)).toEqual(['new', 'old-small']);
    expect(fit.skipped).toEqual([{ name: 'mid-big', reason: 'size cap: 60 bytes, 50 of 200 left' }]);
    expect(fit.left).toBe(40);
    expect(items.map((i) => i.name)).toEqual(['old-small', 'new', 'mid-big']); // input left as it was
  });

  it('orders files of the same time by name (the current log before its rotations)', () => {
    const fit = fitNewestFirst(
      [
        { name: 'var/log/clgw/clgw.log.1', size: 1, mtimeMs: 5 },
        { name: 'var/log/clgw/clgw.log', size: 1, mtimeMs: 5 },
      ],
      10,
      10,
    );
    expect(fit.taken.map((t) => t.name)).toEqual(['var/log/clgw/clgw.log', 'var/log/clgw/clgw.log.1']);
  });
});
