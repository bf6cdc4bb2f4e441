/**
 * ISO 9660 images for the first-boot tests, made with `xorriso -as mkisofs`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Runs `xorriso -as mkisofs <args>`. Debian 12's xorriso 1.5.4 now and then dies of SIGSEGV while
 * shutting down *after* "completed successfully" (seen once in a fresh `make test` beside a QEMU
 * run); that is the tool, not what the tests judge, so a death by a signal is run once more. Any
 * other failure, or a second crash, fails the test.
 */
export async function mkisofs(args: string[]): Promise<void> {
  try {
    await run('xorriso', ['-as', 'mkisofs', ...args]);
  } catch (e) {
    if (!(e as { signal?: string | null }).signal) throw e;
    await run('xorriso', ['-as', 'mkisofs', ...args]);
  }
}
