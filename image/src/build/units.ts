/**
 * The image's systemd units checked in the tree they will boot in: `systemd-analyze verify
 * --root=<tree>` loads our units together with the Debian packages' units they name (VMware
 * Tools' open-vm-tools.service and vgauth.service, systemd-networkd, network-pre.target…) and
 * every drop-in and enablement link of the tree, so an ordering cycle, a bad drop-in or a unit
 * that names a missing program fails the build instead of a boot. The test suite cannot do this
 * with the real units: it has no Debian package's units without installing them on the test
 * machine.
 *
 * verify builds one start transaction per unit named; a cycle among units that no single one of
 * them pulls in (our first boot before systemd-networkd, VMware Tools after it) shows only in the
 * transaction of the boot itself, so the boot's target and the power-off's are always verified
 * too (nothing we ship may break "Shut Down Guest" either).
 */
import { ClgwError } from '@clgw/core/errors.js';
import { run } from './run.js';

/** The transactions of a boot and of a power-off, verified with every check. */
export const SYSTEM_TARGETS = ['default.target', 'poweroff.target'] as const;

/**
 * Runs `systemd-analyze verify --root=<tree>` on {@link SYSTEM_TARGETS} and `units` (names of
 * units in the tree) and throws IMAGE_BUILD_FAILED when it prints anything: verify may report an
 * ordering cycle on stderr with exit status 0, so silence, not the status, is the verdict.
 */
export async function verifyTreeUnits(tree: string, units: readonly string[]): Promise<void> {
  const args = ['verify', `--root=${tree}`, '--man=no', ...SYSTEM_TARGETS, ...units];
  let output: string;
  try {
    const r = await run('systemd-analyze', args, {
      // Plain text: no pager, no colors.
      env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', SYSTEMD_LOG_COLOR: '0' },
    });
    output = `${r.stdout}${r.stderr}`;
  } catch (e) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `systemd-analyze ${args.join(' ')} failed: ${(e as Error).message}`,
      { cause: e, details: { tree, units: [...units] } },
    );
  }
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines.length > 0) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `systemd-analyze ${args.join(' ')} is not silent:\n${lines.join('\n')}`,
      { details: { tree, units: [...units], output: lines } },
    );
  }
}
