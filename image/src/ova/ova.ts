/**
 * The VMware virtual appliance: the raw disk image as a streamOptimized VMDK, the OVF descriptor
 * and a SHA-256 manifest in one ustar archive (node-tar). Member order as DSP0243 §5.3 wants it and
 * vSphere streams it: the descriptor first, then the manifest, then the disk.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError, toClgwError } from '@clgw/core/errors.js';
import { fsyncDir } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { create as createTar } from 'tar';
import { type Firmware, OVA_FIRMWARE, renderOvf } from './ovf.js';

export interface OvaOptions {
  /** The disk image (`clgw-<version>.img`): its size is the virtual disk's capacity. */
  rawDisk: string;
  outFile: string;
  /** The gateway software version shown in the ProductSection. */
  version: string;
  /** Base name of the members and of the VM (default `clgw-<version>`). */
  name?: string;
  /** Default {@link OVA_FIRMWARE} (UEFI). */
  firmware?: Firmware;
  /** Modification time of the members, ms since the epoch (default now). */
  now?: number;
}

export interface OvaMember {
  name: string;
  size: number;
  sha256: string;
}

export interface BuiltOva {
  file: string;
  /** In archive order: `.ovf`, `.mf`, `.vmdk`. */
  members: OvaMember[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await execFile('qemu-img', args, { timeoutMs: 30 * 60_000 })).stdout;
  } catch (e) {
    throw new ClgwError('IMAGE_BUILD_FAILED', toClgwError(e).message, { cause: e });
  }
}

/** Bytes of the VMDK that hold data: the grains qemu-img maps as data (zeros are not stored). */
async function populatedBytes(vmdk: string): Promise<number> {
  const map = JSON.parse(await qemuImg(['map', '--output=json', '-f', 'vmdk', vmdk])) as {
    length: number;
    data: boolean;
  }[];
  return map.filter((m) => m.data).reduce((sum, m) => sum + m.length, 0);
}

/**
 * Writes the files `members` of directory `dir` as a ustar archive to `outFile`, in that order,
 * atomically: a temp file in the same directory, fsync, rename, fsync the directory. Portable
 * (no owner, atime or ctime) with one mtime, so the same members give the same bytes. Each member
 * is 0644, whatever the build's umask made it.
 */
async function writeTar(outFile: string, dir: string, members: string[], mtimeMs: number): Promise<void> {
  const outDir = path.dirname(outFile);
  const temp = path.join(outDir, `.${path.basename(outFile)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    for (const m of members) await fs.chmod(path.join(dir, m), 0o644);
    await createTar(
      {
        file: temp,
        cwd: dir,
        portable: true,
        mtime: new Date(mtimeMs),
        // Exactly these members: a warning (a member it could not add) fails the build.
        noDirRecurse: true,
        strict: true,
        // Bounded reads of the multi-GiB disk; one member at a time, in order.
        maxReadSize: 1024 * 1024,
        jobs: 1,
      },
      members,
    );
    const out = await fs.open(temp, 'r+');
    try {
      await out.sync();
    } finally {
      await out.close();
    }
    await fs.rename(temp, outFile);
  } catch (e) {
    await fs.rm(temp, { force: true });
    throw new ClgwError('IMAGE_BUILD_FAILED', `cannot write ${outFile}: ${(e as Error).message}`, {
      cause: e,
      details: { file: outFile },
    });
  }
  await fsyncDir(outDir);
}

/**
 * Builds `<name>.ova` from the raw disk image: `qemu-img convert` to a streamOptimized VMDK, the
 * descriptor ({@link renderOvf}) and the manifest (`SHA256(<member>)= <hex>` for the descriptor
 * and the disk), archived by node-tar in that order.
 */
export async function buildOva(options: OvaOptions): Promise<BuiltOva> {
  const name = options.name ?? `clgw-${options.version}`;
  if (!NAME.test(name) || !NAME.test(options.version))
    throw new ClgwError(
      'INVALID_REQUEST',
      `OVA name "${name}" or version "${options.version}" is not usable`,
    );
  const stat = await fs.stat(options.rawDisk).catch((e: Error) => {
    throw new ClgwError('INVALID_REQUEST', `cannot read disk image ${options.rawDisk}: ${e.message}`, {
      details: { file: options.rawDisk },
    });
  });
  // A VMDK counts 512-byte sectors: anything else would be rounded up, and the OVF would lie.
  if (!stat.isFile() || stat.size === 0 || stat.size % 512 !== 0)
    throw new ClgwError(
      'INVALID_REQUEST',
      `disk image ${options.rawDisk} must be a regular file of whole 512-byte sectors (${stat.size} bytes)`,
      { details: { file: options.rawDisk } },
    );

  const outFile = path.resolve(options.outFile);
  await fs.mkdir(path.dirname(outFile), { recursive: true });
  const work = await fs.mkdtemp(path.join(path.dirname(outFile), `.${path.basename(outFile)}-`));
  try {
    const files = { ovf: `${name}.ovf`, mf: `${name}.mf`, vmdk: `${name}-disk1.vmdk` };
    const at = (f: string) => path.join(work, f);
    await qemuImg([
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=streamOptimized',
      options.rawDisk,
      at(files.vmdk),
    ]);
    const vmdkSize = (await fs.stat(at(files.vmdk))).size;
    await fs.writeFile(
      at(files.ovf),
      renderOvf({
        name,
        version: options.version,
        disk: { href: files.vmdk, size: vmdkSize },
        capacityBytes: stat.size,
        populatedBytes: await populatedBytes(at(files.vmdk)),
        firmware: options.firmware ?? OVA_FIRMWARE,
      }),
    );
    const digests = new Map<string, string>();
    for (const f of [files.ovf, files.vmdk]) digests.set(f, await sha256(at(f)));
    await fs.writeFile(at(files.mf), [...digests].map(([f, hex]) => `SHA256(${f})= ${hex}\n`).join(''));
    digests.set(files.mf, await sha256(at(files.mf)));

    const members: OvaMember[] = [];
    for (const f of [files.ovf, files.mf, files.vmdk])
      members.push({ name: f, size: (await fs.stat(at(f))).size, sha256: digests.get(f)! });
    await writeTar(
      outFile,
      work,
      members.map((m) => m.name),
      options.now ?? Date.now(),
    );
    return { file: outFile, members };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
