/**
 * The appliance's systemd units (image/systemd/) pass `systemd-analyze verify` without a single
 * warning, and the console units have what a VGA console needs (issue #5).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const UNITS = path.join(REPO, 'image/systemd');
const skip = await fs.access('/usr/bin/systemd-analyze').then(
  () => undefined,
  () => 'systemd-analyze is not installed (Debian package systemd)',
);
if (skip) recordSkip('test/integration/image/systemd-units.test.ts', skip);

function verify(file: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', ['verify', file], (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}`.trim() }),
    );
  });
}

describe.skipIf(skip)('systemd units', async () => {
  const units = (await fs.readdir(UNITS)).filter((f) => f.endsWith('.service'));

  it('are there: the agent, the two console screens, the first boot, the hostname and the recovery system', () => {
    expect(units.sort()).toEqual([
      'clgw-agent.service',
      'clgw-console-home.service',
      'clgw-console-menu.service',
      'clgw-firstboot.service',
      'clgw-hostname.service',
      'clgw-recovery.service',
    ]);
  });

  it.each(units)('%s passes systemd-analyze verify without a warning', async (unit) => {
    expect(await verify(path.join(UNITS, unit))).toEqual({ code: 0, output: '' });
  });

  it('the check itself catches a misspelled key', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-units-'));
    try {
      const text = await fs.readFile(path.join(UNITS, 'clgw-console-home.service'), 'utf8');
      await fs.writeFile(path.join(dir, 'broken.service'), text.replace('TTYVHangup=', 'TTYVHangpu='));
      expect((await verify(path.join(dir, 'broken.service'))).output).toContain("Unknown key 'TTYVHangpu'");
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('clgw-firstboot.service runs once per data partition, before systemd-networkd', async () => {
    const text = await fs.readFile(path.join(UNITS, 'clgw-firstboot.service'), 'utf8');
    for (const line of [
      'ConditionPathExists=!/var/clgw/firstboot.json',
      'Wants=network-pre.target',
      'Before=network-pre.target systemd-networkd.service',
      'Type=oneshot',
      'ExecStart=/usr/bin/node /usr/lib/clgw/agent/dist/cli/firstboot.js',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(text).toMatch(/\nRequiresMountsFor=\/var\/clgw( |\n)/);
  });

  it.each([
    ['clgw-console-home.service', '/dev/tty1', 'home'],
    ['clgw-console-menu.service', '/dev/tty2', 'menu'],
  ])('%s runs the console on %s with TERM=linux and restarts', async (unit, tty, screen) => {
    const text = await fs.readFile(path.join(UNITS, unit), 'utf8');
    for (const line of [
      `TTYPath=${tty}`,
      'TTYReset=yes',
      'TTYVHangup=yes',
      'TTYVTDisallocate=yes',
      'Restart=always',
      'Environment=TERM=linux',
      'StandardInput=tty',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(text).toMatch(
      new RegExp(`ExecStart=/usr/bin/node /usr/lib/clgw/console-tui/dist/main\\.js ${screen}\\n`),
    );
  });
});
