/**
 * The disk assembly of `make image` on small inputs (a stand-in kernel and tiny trees; the real
 * debootstrap tree boots in `make e2e`): the GPT passes `sgdisk -v` and names the partitions in
 * grub.cfg's order, GRUB's BIOS boot code points at its core image, the ESP carries GRUB's files,
 * the default grubenv and the platform, slot A holds the release images byte for byte, slot B is
 * empty, and the qcow2 made from it passes `qemu-img check`.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { defaultGrubenv } from '@clgw/core/slot/bootchooser.js';
import { serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assembleDisk,
  buildBootImage,
  buildEsp,
  buildRecoveryImage,
  buildRootImage,
  mkfsExt4,
  planFor,
} from '../../../image/src/build/disk.js';
import { type DiskPlan, MIB, partition, SECTOR } from '../../../image/src/build/layout.js';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const run = promisify(execFile);
const TOOLS = ['sgdisk', 'grub-mkimage', 'mkfs.vfat', 'mcopy', 'qemu-img', 'mkfs.ext4'];
const missing = (
  await Promise.all(
    TOOLS.map((t) =>
      run('sh', ['-c', `command -v ${t}`]).then(
        () => undefined,
        () => t,
      ),
    ),
  )
).filter(Boolean);
const skip = missing.length ? `missing ${missing.join(', ')} (scripts/setup image-tests)` : undefined;
if (skip) recordSkip('test/integration/image/disk.test.ts', skip);

describe.skipIf(skip)('the appliance disk', () => {
  let work: string;
  let disk: string;
  let plan: DiskPlan;
  const parts = { esp: '', boot: '', root: '', recovery: '', data: '' };

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-disk-'));
    const kernel = { vmlinuz: path.join(work, 'vmlinuz'), initrd: path.join(work, 'initrd.img') };
    await fs.writeFile(kernel.vmlinuz, 'stand-in kernel\n');
    await fs.writeFile(kernel.initrd, Buffer.alloc(256 * 1024, 7));
    const tree = path.join(work, 'tree');
    await fs.mkdir(path.join(tree, 'etc'), { recursive: true });
    await fs.writeFile(path.join(tree, 'etc/os-release'), 'ID=clgw\nVERSION_ID=1.0.0\n');
    parts.boot = path.join(work, 'boot.img');
    parts.root = path.join(work, 'root.img');
    parts.recovery = path.join(work, 'recovery.img');
    parts.data = path.join(work, 'data.img');
    parts.esp = path.join(work, 'esp.img');
    await buildBootImage(kernel, parts.boot, 'test');
    await buildRootImage(tree, parts.root, 'test');
    await buildRecoveryImage({
      tree,
      kernel,
      boot: parts.boot,
      root: parts.root,
      version: '1.0.0',
      out: parts.recovery,
    });
    await fs.mkdir(path.join(work, 'empty'));
    await mkfsExt4(path.join(work, 'empty'), parts.data, 'data', 16 * MIB, 'test-data');
    await buildEsp(REPO, work, parts.esp, 'kvm');
    plan = await planFor(parts);
    disk = path.join(work, 'disk.img');
    await assembleDisk(plan, parts, disk, work);
  }, 120_000);
  afterAll(async () => {
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  async function readAt(offset: number, length: number): Promise<Buffer> {
    const fd = await fs.open(disk, 'r');
    try {
      const b = Buffer.alloc(length);
      await fd.read(b, 0, length, offset);
      return b;
    } finally {
      await fd.close();
    }
  }

  it("has a GPT that sgdisk -v finds no problem with, named in grub.cfg's partition order", async () => {
    const { stdout } = await run('sgdisk', ['-v', disk]);
    expect(stdout).toContain('No problems found');
    const { stdout: table } = await run('sgdisk', ['-p', disk]);
    const names = table
      .split('\n')
      .filter((l) => /^\s+\d+\s/.test(l))
      .map((l) => l.trim().split(/\s+/).at(-1));
    expect(names).toEqual(['bios', 'esp', 'boot_a', 'boot_b', 'root_a', 'root_b', 'recovery', 'data']);
    const cfg = await fs.readFile(path.join(REPO, 'image/grub/grub.cfg'), 'utf8');
    expect(cfg).toContain(`(\${clgw_disk},gpt${partition(plan, 'boot_a').number})`);
    expect(cfg).toContain(`(\${clgw_disk},gpt${partition(plan, 'boot_b').number})`);
    expect(cfg).toContain(`(\${clgw_disk},gpt${partition(plan, 'recovery').number})`);
  });

  it('boots GRUB on BIOS: the MBR code loads core.img from the BIOS boot partition, which lists its own sectors', async () => {
    const mbr = await readAt(0, SECTOR);
    const bios = partition(plan, 'bios');
    expect(mbr.readBigUInt64LE(0x5c)).toBe(BigInt(bios.firstSector));
    expect(mbr.readUInt16LE(510)).toBe(0xaa55);
    expect(mbr[450]).toBe(0xee); // the protective MBR's GPT entry survived the boot code
    const core = await readAt(bios.firstSector * SECTOR, SECTOR);
    expect(core.readBigUInt64LE(SECTOR - 12)).toBe(BigInt(bios.firstSector + 1));
  });

  it('has GRUB (UEFI), grub.cfg, slot-select.cfg, the factory grubenv and the platform on the ESP', async () => {
    const esp = partition(plan, 'esp');
    const at = `${disk}@@${esp.firstSector * SECTOR}`;
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const { stdout: files } = await run('mdir', ['-b', '-/', '-i', at, '::'], { env });
    for (const f of [
      'EFI/BOOT/BOOTX64.EFI',
      'grub/grub.cfg',
      'grub/slot-select.cfg',
      'grub/grubenv',
      'clgw/platform',
    ]) {
      expect(files.toUpperCase()).toContain(`::/${f}`.toUpperCase());
    }
    const grubenv = await run('mtype', ['-i', at, '::grub/grubenv'], { env, encoding: 'buffer' });
    expect(Buffer.compare(grubenv.stdout, Buffer.from(serializeGrubenv(defaultGrubenv())))).toBe(0);
    expect((await run('mtype', ['-i', at, '::clgw/platform'], { env })).stdout).toBe('kvm\n');
  });

  it('holds the release images in slot A byte for byte, and nothing in slot B', async () => {
    for (const [name, file] of [
      ['boot_a', parts.boot],
      ['root_a', parts.root],
      ['recovery', parts.recovery],
    ] as const) {
      const image = await fs.readFile(file);
      const p = partition(plan, name);
      expect(Buffer.compare(await readAt(p.firstSector * SECTOR, image.length), image), name).toBe(0);
    }
    for (const name of ['boot_b', 'root_b'] as const) {
      const p = partition(plan, name);
      expect(
        (await readAt(p.firstSector * SECTOR, MIB)).every((b) => b === 0),
        name,
      ).toBe(true);
    }
  });

  it('converts to a qcow2 that qemu-img checks clean and that holds the same bytes', async () => {
    const qcow2 = path.join(work, 'disk.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', disk, qcow2]);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', qcow2])).stdout) as {
      format: string;
      'virtual-size': number;
    };
    expect(info.format).toBe('qcow2');
    expect(info['virtual-size']).toBe(plan.sizeBytes);
    await run('qemu-img', ['check', qcow2]);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', disk, qcow2]);
  });
});
