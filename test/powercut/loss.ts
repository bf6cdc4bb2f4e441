/**
 * What a power cut takes with it besides the running processes: the bytes that were written but
 * not yet fsynced. Applied to the appliance root after every cut, before it is powered on again
 * (README.md in this directory describes the model and its limits).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AppliancePaths, PartitionKind, SlotName } from '@clgw/core/platform/paths.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { readJournal } from '../../agent/src/state/journal-file.js';
import type { Rng } from './rng.js';

/** Granularity of the damage: each block of a range not known to be durable is kept, zeroed or scrambled. */
const BLOCK = 64 * 1024;
/** `writeFileAtomic`'s and `copyFileAtomic`'s temp files: `.<name>.<12 hex>.tmp`. */
const TEMP_FILE = /^\..+\.[0-9a-f]{12}\.tmp$/;

/** One range of a file whose content was not durable at the cut. */
export interface LostRange {
  file: string;
  from: number;
  to: number;
  why: string;
}

/** What the model did after one cut (for failure reports). */
export interface LossReport {
  ranges: LostRange[];
  tempFiles: string[];
}

/**
 * The recovery program's slot writes, as the test saw them on its console: a device counts as
 * possibly not durable from "writing <image> to <device>…" until "<device>: read-back matches"
 * (the read-back follows the fsync), per run of the program.
 */
export class RecoveryWrites {
  /** Devices written in the current run and not yet read back, with the image size. */
  private readonly open = new Map<string, number>();

  constructor(private readonly sizes: Record<string, number>) {}

  /** Feed every console line of the recovery program. */
  line(text: string): void {
    if (text.includes('starting factory restore')) this.open.clear();
    const writing = /^recovery: writing (\S+) to (\S+)…$/.exec(text);
    if (writing) this.open.set(writing[2]!, this.sizes[writing[1]!] ?? 0);
    const done = /^recovery: (\S+): read-back matches$/.exec(text);
    if (done) this.open.delete(done[1]!);
  }

  /** The device ranges a cut now would leave undefined; forgets them (the next run starts afresh). */
  take(): LostRange[] {
    const out = [...this.open].map(([file, size]) => ({
      file,
      from: 0,
      to: size,
      why: 'recovery program wrote it and had not read it back',
    }));
    this.open.clear();
    return out;
  }
}

/**
 * Applies the loss of un-synced data after a cut:
 * - every temp file of an atomic write is truncated to a random length and scrambled (nobody may
 *   read one; one whose content was fsynced is scrambled too — harmless, and it would catch a reader);
 * - the target slot of a download, beyond the offsets the durable journal records for each
 *   artifact (`written`), when the durable boot environment no longer marks that slot good
 *   (it is disabled before the first byte is written);
 * - `extra` ranges (the recovery program's slot writes);
 * - `run/` is a tmpfs: it is emptied.
 */
export async function applyLoss(paths: AppliancePaths, rng: Rng, extra: LostRange[]): Promise<LossReport> {
  const report: LossReport = { ranges: [...extra], tempFiles: [] };

  for (const file of await tempFiles(paths.root)) {
    const size = (await fs.stat(file)).size;
    const keep = Math.floor(rng.next() * (size + 1));
    await fs.writeFile(file, rng.bytes(keep));
    report.tempFiles.push(path.relative(paths.root, file));
  }

  const journal = await readJournal(paths.journal).catch(() => undefined);
  if (journal?.target && journal.written) {
    const slot: SlotName = journal.target.slot;
    const env = await readGrubenv(paths.grubenv).catch(() => undefined);
    if (env?.get(`${slot}_OK`) !== '1') {
      for (const kind of ['boot', 'root'] as PartitionKind[]) {
        const from = journal.written[kind];
        const to = journal.target.artifacts[kind].size;
        if (from < to) {
          report.ranges.push({
            file: paths.partition(kind, slot),
            from,
            to,
            why: `beyond the durable offset of ${kind} (journal state ${journal.state})`,
          });
        }
      }
    }
  }

  for (const range of report.ranges) await damage(range, rng);
  await fs.rm(paths.runDir, { recursive: true, force: true });
  return report;
}

/** Keeps, zeroes or scrambles each block of the range (a third of the time each). */
async function damage(range: LostRange, rng: Rng): Promise<void> {
  const handle = await fs.open(range.file, 'r+');
  try {
    for (let at = range.from; at < range.to; ) {
      const end = Math.min(range.to, (Math.floor(at / BLOCK) + 1) * BLOCK);
      const roll = rng.next();
      if (roll >= 1 / 3) {
        const bytes = roll < 2 / 3 ? Buffer.alloc(end - at) : rng.bytes(end - at);
        await handle.write(bytes, 0, bytes.length, at);
      }
      at = end;
    }
  } finally {
    await handle.close();
  }
}

async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tempFiles(p)));
    else if (e.isFile() && TEMP_FILE.test(e.name)) out.push(p);
  }
  return out;
}
