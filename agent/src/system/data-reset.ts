import { promises as fs } from 'node:fs';
import { fsyncDir, writeFileAtomic } from '@clgw/core/platform/atomic.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';

/**
 * Data Reset: erases what was stored during onboarding (account link, PBX settings, tokens,
 * advanced settings — everything under the onboarding directory of the data partition) and
 * keeps the installed software, the network configuration, logs and the update state.
 * A marker written first makes a reset cut off half-way finish at the next start.
 */
export async function dataReset(paths: AppliancePaths, log: Logger, reason = 'requested'): Promise<number> {
  await writeFileAtomic(paths.dataResetMarker, `${reason}\n`);
  let removed = 0;
  const entries = await fs.readdir(paths.onboardingDir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  for (const name of entries) {
    await fs.rm(`${paths.onboardingDir}/${name}`, { recursive: true, force: true });
    removed++;
  }
  if (entries.length > 0) await fsyncDir(paths.onboardingDir);
  await fs.rm(paths.dataResetMarker, { force: true });
  await fsyncDir(paths.dataDir);
  log.warn('data reset: onboarding data erased', { entries: removed, reason });
  return removed;
}

/** True when a data reset was cut off and must be finished. */
export async function dataResetPending(paths: AppliancePaths): Promise<boolean> {
  return fs.stat(paths.dataResetMarker).then(
    () => true,
    () => false,
  );
}
