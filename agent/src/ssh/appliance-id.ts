import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { APPLIANCE_ID_LENGTH, applianceIdFrom, isApplianceId } from '@clgw/core/ssh/principal.js';

/**
 * This appliance's ID (`var/clgw/appliance-id`), or undefined when there is none (yet) or the
 * file holds something else.
 */
export async function readApplianceId(file: string): Promise<string | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const id = text.trim();
  return isApplianceId(id) ? id : undefined;
}

/**
 * The appliance's ID, made once: random (never derived from the MAC address, which is printed on
 * the box and seen on the LAN), written atomically to the data partition, readable by everyone
 * (sshd's principals command runs as an unprivileged user; the ID is shown on the screen anyway).
 * It survives updates and a data reset; a factory reset erases the data partition and so makes a
 * new appliance as far as support certificates go — and staged rollouts, whose cohorts it picks
 * (actors/check.ts). Returns the ID and whether it was made now.
 */
export async function ensureApplianceId(file: string): Promise<{ id: string; created: boolean }> {
  const existing = await readApplianceId(file);
  if (existing) return { id: existing, created: false };
  const id = applianceIdFrom(randomBytes(APPLIANCE_ID_LENGTH));
  await writeFileAtomic(file, `${id}\n`, { mode: 0o644 });
  // The mode at creation is masked by the umask; the principals command must be able to read it.
  await fs.chmod(file, 0o644);
  return { id, created: true };
}
