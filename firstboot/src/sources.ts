/**
 * Where the OVF environment comes from (SPEC.md §5): VMware's guestinfo (`guestinfo.ovfEnv`,
 * read with open-vm-tools' `vmtoolsd`) or an ISO 9660 CD-ROM carrying `ovf-env.xml` (the
 * `iso` transport, also what a KVM deployment or the end-to-end test attaches). The CD-ROM is
 * read in place, never mounted.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError, isClgwError, toClgwError } from '@clgw/core/errors.js';
import { MAX_OVF_ENV_BYTES } from '@clgw/core/firstboot/ovf-env.js';
import type { Transport } from '@clgw/core/firstboot/report.js';
import { oneLine } from '@clgw/core/format.js';
import type { execFile } from '@clgw/core/platform/exec.js';
import { type BlockReader, readOvfEnvFromIso } from './iso9660.js';

/** An environment found (its document), or found but unusable (a CD-ROM's file too large). */
export type FoundEnvironment = {
  transport: Transport;
  /** `guestinfo.ovfEnv`, `/dev/sr0: OVF_ENV.XML;1`, or a file. */
  source: string;
} & ({ document: string | Uint8Array } | { error: ClgwError });

export interface SourceDeps {
  execFile: typeof execFile;
  /** The directories `vmtoolsd` is looked for in (`PATH`). */
  searchPath: string;
  /** A source that was there but could not be read (a VM without the guestinfo key, a data CD). */
  note(line: string): void;
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The CD-ROM drives looked at, in order (a VM has one or two). */
export const CDROM_DEVICES: readonly string[] = ['/dev/sr0', '/dev/sr1', '/dev/sr2', '/dev/sr3'];

/**
 * How long the first boot keeps asking VMware for `guestinfo.ovfEnv` while the answer is neither
 * the document nor "not set" (the tools' channel still coming up): the bound on a first boot's
 * delay when the tools are broken.
 */
export const GUESTINFO_WAIT_MS = 30_000;
/** One call's limit: vmtoolsd answers in milliseconds, or hangs. */
const GUESTINFO_CALL_MS = 10_000;
const GUESTINFO_RETRY_MS = 2_000;
/** VMware's answer when the VM has no such key (deployed without the OVF environment). */
const NOT_SET = /No value found/i;

async function findInPath(bin: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(':').filter((d) => d !== '')) {
    const file = path.join(dir, bin);
    if (
      await fs.access(file, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return undefined;
}

/**
 * VMware guestinfo through open-vm-tools' `vmtoolsd` (asked only on the VMware image); undefined
 * when there is nothing there, with a note saying why. "Not set" is final; any other failure (a
 * hang, the tools' channel not up yet) is asked again until `waitMs` has passed.
 */
export async function readGuestinfo(
  deps: SourceDeps,
  waitMs = GUESTINFO_WAIT_MS,
): Promise<FoundEnvironment | undefined> {
  const vmtoolsd = await findInPath('vmtoolsd', deps.searchPath);
  if (!vmtoolsd) {
    deps.note('guestinfo.ovfEnv not read: VMware Tools (vmtoolsd) is not installed');
    return undefined;
  }
  const started = deps.now();
  for (let attempt = 1; ; attempt++) {
    const left = started + waitMs - deps.now();
    try {
      const { stdout } = await deps.execFile(vmtoolsd, ['--cmd', 'info-get guestinfo.ovfEnv'], {
        timeoutMs: Math.max(1_000, Math.min(GUESTINFO_CALL_MS, left)),
        maxBuffer: 2 * MAX_OVF_ENV_BYTES,
      });
      if (stdout.trim() !== '')
        return { transport: 'guestinfo', source: 'guestinfo.ovfEnv', document: stdout };
      deps.note('guestinfo.ovfEnv is empty');
      return undefined;
    } catch (e) {
      const why = toClgwError(e).message;
      if (NOT_SET.test(why)) {
        deps.note(`guestinfo.ovfEnv is not set (deployed without the OVF environment): ${oneLine(why)}`);
        return undefined;
      }
      const elapsed = deps.now() - started;
      if (elapsed + GUESTINFO_RETRY_MS >= waitMs) {
        deps.note(
          `guestinfo.ovfEnv not read (${attempt} ${attempt === 1 ? 'try' : 'tries'} in ${Math.round(elapsed / 1000)} s): ${oneLine(why)}`,
        );
        return undefined;
      }
      await deps.sleep(GUESTINFO_RETRY_MS);
    }
  }
}

/** Opens a block device or a regular file for reading by offset; the caller closes it. */
async function openReader(file: string): Promise<BlockReader & { close(): Promise<void> }> {
  const handle = await fs.open(file, constants.O_RDONLY);
  try {
    const stat = await handle.stat();
    let size: number;
    if (stat.isFile()) size = stat.size;
    else if (stat.isBlockDevice()) {
      // A block device's stat size is 0; sysfs has it in 512-byte sectors.
      const sectors = await fs.readFile(`/sys/class/block/${path.basename(file)}/size`, 'utf8');
      size = Number(sectors.trim()) * 512;
    } else throw new ClgwError('ISO_INVALID', `${file} is neither a file nor a block device`);
    return {
      name: file,
      size,
      read: async (offset, length) => {
        const buf = Buffer.alloc(length);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(buf, filled, length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return buf.subarray(0, filled);
      },
      close: () => handle.close(),
    };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * `ovf-env.xml` from an ISO 9660 image (a CD-ROM drive or a file); undefined when the disc has
 * none. Throws when the image cannot be read or is not ISO 9660.
 */
export async function readIso(file: string): Promise<FoundEnvironment | undefined> {
  const reader = await openReader(file);
  try {
    const found = await readOvfEnvFromIso(reader, MAX_OVF_ENV_BYTES);
    return found && { transport: 'iso', source: `${file}: ${found.name}`, document: found.data };
  } catch (e) {
    if (isClgwError(e) && e.code === 'OVF_ENV_INVALID') return { transport: 'iso', source: file, error: e };
    throw e;
  } finally {
    await reader.close();
  }
}

/** The first CD-ROM drive with `ovf-env.xml`; drives that are absent or empty are skipped. */
export async function readCdroms(
  deps: Pick<SourceDeps, 'note'>,
  devices: readonly string[],
): Promise<FoundEnvironment | undefined> {
  for (const device of devices) {
    try {
      const found = await readIso(device);
      if (found) return found;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // No such drive, or a drive without a disc.
      if (code === 'ENOENT' || code === 'ENOMEDIUM' || code === 'ENXIO') continue;
      deps.note(`${device} not read: ${oneLine(toClgwError(e).message)}`);
    }
  }
  return undefined;
}
