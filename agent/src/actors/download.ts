import type { Deps } from '../deps.js';
import { ClgwError } from '../errors.js';
import type { Journal } from '../machine/journal.js';
import type { Written } from '../machine/update.machine.js';
import type { PartitionKind } from '../platform/paths.js';
import { disableSlot } from '../slot/bootchooser.js';
import { readGrubenv, writeGrubenv } from '../slot/grubenv-file.js';
import { deviceCapacity, writeArtifact } from '../slot/install.js';
import { readSlotStatus, writeSlotRecord } from '../slot/status.js';

const ARTIFACTS: PartitionKind[] = ['boot', 'root'];

/** The artifact's URL: its path in compat.yaml under the base URL. */
export function artifactUrl(baseUrl: string, path: string): string {
  return new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).toString();
}

/**
 * Streams the release's boot and root artifacts into the inactive slot, hashing in flight and
 * resuming from the journal's durable offsets. Before the first byte is written the target slot
 * is disabled in the boot environment (only if it was enabled), so a half-written slot is never
 * booted; the active slot's devices are never opened for writing.
 */
export async function downloadRelease(
  deps: Deps,
  journal: Journal,
  signal: AbortSignal,
  checkpoint: (written: Written) => void,
): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'downloading without a target release in the journal');
  const { paths } = deps;
  const written = { boot: 0, root: 0, ...journal.written };

  for (const kind of ARTIFACTS) {
    const device = paths.partition(kind, target.slot);
    const capacity = await deviceCapacity(device);
    const size = target.artifacts[kind].size;
    if (size > capacity) {
      throw new ClgwError(
        'NO_SPACE',
        `the ${kind} artifact of ${target.version} (${size} bytes) does not fit slot ${target.slot}'s ${device} (${capacity} bytes)`,
        { details: { device, size, capacity } },
      );
    }
  }

  const env = await readGrubenv(paths.grubenv);
  const disabled = disableSlot(env, target.slot);
  if (!sameEnv(env, disabled)) {
    deps.log.info('disabling the target slot before writing it', { slot: target.slot });
    await writeGrubenv(paths.grubenv, disabled);
  }
  if ((await readSlotStatus(paths.slotStatus))[target.slot]) {
    await writeSlotRecord(paths.slotStatus, target.slot, undefined);
  }

  /** Records an offset the slot holds durably: persisted first, then reported to the machine. */
  const durable = async (kind: PartitionKind, offset: number) => {
    written[kind] = offset;
    await deps.persistJournal({
      ...journal,
      written: { ...written },
      updatedAt: new Date(deps.clock.now()).toISOString(),
    });
    checkpoint({ ...written });
  };

  const total = target.artifacts.boot.size + target.artifacts.root.size;
  deps.progress.start(`downloading ${target.version}`, total, written.boot + written.root);
  const active = ARTIFACTS.map((k) => paths.partition(k, target.sourceSlot));
  let before = 0;
  for (const kind of ARTIFACTS) {
    const artifact = target.artifacts[kind];
    const base = before;
    before += artifact.size;
    if (written[kind] >= artifact.size) continue;
    deps.log.info('writing artifact into slot', {
      artifact: kind,
      slot: target.slot,
      size: artifact.size,
      resumeFrom: written[kind],
    });
    await writeArtifact(
      deps.http,
      {
        url: artifactUrl(deps.config.baseUrl, artifact.path),
        size: artifact.size,
        sha256: artifact.sha256,
        device: paths.partition(kind, target.slot),
      },
      {
        activeDevices: active,
        resumeOffset: written[kind],
        signal,
        onProgress: (n) => deps.progress.update(base + n),
        // Called at every fsynced checkpoint, and with the full size once the artifact is done.
        onCheckpoint: (offset) => durable(kind, offset),
      },
    );
  }
}

function sameEnv(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
