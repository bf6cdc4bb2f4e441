/**
 * The OVA packer on a small partitioned raw disk: the archive's members and ustar headers, the
 * VMDK as qemu-img sees it (streamOptimized, consistent, the same bytes back), the OVF descriptor
 * parsed namespace-aware (properties, deployment options, transport, references and sizes), the
 * manifest's digests, and xmllint's verdict against the OVF envelope schema.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { selectProfile } from '@clgw/core/system/profiles.js';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltOva, buildOva } from '../../../image/src/ova/ova.js';
import { OVF_NS, RASD_NS, VMW_NS, VSSD_NS, xmlEscape } from '../../../image/src/ova/ovf.js';
import { tempDir } from '../../support/appliance.js';
import { xmllintSchema } from '../../support/ovf-schema.js';
import { recordSkip } from '../../support/skip.js';

const run = promisify(execFile);
const TOOLS = [
  ['qemu-img', '--version', 'qemu-utils'],
  ['sgdisk', '--version', 'gdisk'],
  ['xmllint', '--version', 'libxml2-utils'],
] as const;
let skip: string | undefined;
for (const [bin, arg, pkg] of TOOLS) {
  if (
    !skip &&
    (await run(bin, [arg]).then(
      () => false,
      () => true,
    ))
  )
    skip = `${bin} is not installed (Debian package ${pkg}; scripts/setup image-tests)`;
}
if (skip) recordSkip('test/integration/image/ova.test.ts', skip);

const MiB = 1024 * 1024;
const RAW_SIZE = 32 * MiB;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Member {
  name: string;
  size: number;
  header: Buffer;
  data: Buffer;
}

/** Reads a ustar archive strictly: magic, version, checksum, regular files, zero end blocks. */
function readTar(tar: Buffer): Member[] {
  const members: Member[] = [];
  let at = 0;
  for (;;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from: number, to: number) =>
      header.subarray(from, to).toString('latin1').replace(/\0.*$/s, '');
    expect(field(257, 263)).toBe('ustar');
    expect(header.subarray(263, 265).toString('latin1')).toBe('00');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    expect(Number.parseInt(field(148, 156), 8)).toBe(sum);
    expect(field(156, 157)).toBe('0');
    expect(Number.parseInt(field(100, 108), 8)).toBe(0o644);
    const prefix = field(345, 500);
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = Number.parseInt(field(124, 136), 8);
    members.push({ name, size, header, data: tar.subarray(at + 512, at + 512 + size) });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  // Two zero blocks end it, and nothing follows.
  expect(tar.length).toBe(at + 1024);
  expect(tar.subarray(at).every((b) => b === 0)).toBe(true);
  return members;
}

let dir: string;
let raw: string;
let built: BuiltOva;
let members: Member[];
let ovf: Element;

beforeAll(async () => {
  if (skip) return;
  dir = await tempDir('ova');
  raw = path.join(dir, 'clgw-1.2.3.img');
  // A sparse disk with a GPT and two partitions, a few MiB of data in them, zeros elsewhere.
  await fs.writeFile(raw, '');
  await fs.truncate(raw, RAW_SIZE);
  await run('sgdisk', ['-n', '1:2048:+8M', '-c', '1:root_a', '-n', '2:0:+8M', '-c', '2:data', raw]);
  const handle = await fs.open(raw, 'r+');
  for (const [offset, size] of [
    [1 * MiB, 3 * MiB],
    [20 * MiB + 4096, MiB / 2],
  ] as const) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await handle.write(data, 0, size, offset);
  }
  await handle.close();

  built = await buildOva({
    rawDisk: raw,
    outFile: path.join(dir, 'out', 'clgw-1.2.3.ova'),
    version: '1.2.3',
    firmware: 'efi',
    now: Date.UTC(2025, 10, 21),
  });
  members = readTar(await fs.readFile(built.file));
  for (const m of members) await fs.writeFile(path.join(dir, m.name), m.data);
  const text = members[0]!.data.toString('utf8');
  const doc = new DOMParser({
    onError: (level, message) => {
      throw new Error(`${level}: ${message}`);
    },
  }).parseFromString(text, 'application/xml');
  ovf = doc.documentElement!;
}, 120_000);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Descendant elements in the OVF envelope namespace named `name`. */
const all = (e: Element, name: string, ns = OVF_NS) => Array.from(e.getElementsByTagNameNS(ns, name));
const one = (e: Element, name: string, ns = OVF_NS) => {
  const found = all(e, name, ns);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};
const ovfAttr = (e: Element, name: string) => e.getAttributeNS(OVF_NS, name);
const rasd = (item: Element, name: string) => all(item, name, RASD_NS)[0]?.textContent ?? undefined;

describe.skipIf(skip)('buildOva', () => {
  it('archives .ovf first, then .mf, then the disk, as plain ustar members', async () => {
    expect(members.map((m) => m.name)).toEqual(['clgw-1.2.3.ovf', 'clgw-1.2.3.mf', 'clgw-1.2.3-disk1.vmdk']);
    expect(built.members.map(({ name, size }) => ({ name, size }))).toEqual(
      members.map(({ name, size }) => ({ name, size })),
    );
    for (const m of members) {
      expect(Number.parseInt(m.header.subarray(136, 148).toString('latin1'), 8)).toBe(
        Date.UTC(2025, 10, 21) / 1000,
      );
      expect(built.members.find((b) => b.name === m.name)?.sha256).toBe(sha256(m.data));
    }
    // Written atomically: nothing but the archive is left beside it.
    expect(await fs.readdir(path.dirname(built.file))).toEqual(['clgw-1.2.3.ova']);
  });

  it('the disk is a consistent streamOptimized VMDK holding exactly the raw image', async () => {
    const vmdk = path.join(dir, 'clgw-1.2.3-disk1.vmdk');
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', vmdk])).stdout);
    expect(info.format).toBe('vmdk');
    expect(info['virtual-size']).toBe(RAW_SIZE);
    expect(info['format-specific']).toMatchObject({
      type: 'vmdk',
      data: { 'create-type': 'streamOptimized' },
    });
    expect((await run('qemu-img', ['check', vmdk])).stdout).toContain('No errors were found');
    const back = path.join(dir, 'back.img');
    await run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdk, back]);
    expect(sha256(await fs.readFile(back))).toBe(sha256(await fs.readFile(raw)));
  });

  it('the descriptor is OVF 1.0 that the DSP8023 schema accepts (xmllint)', async () => {
    const file = path.join(dir, 'clgw-1.2.3.ovf');
    const { code, output } = await xmllintSchema(file);
    expect(output).toContain(`${file} validates`);
    expect(code).toBe(0);
    expect(ovf.namespaceURI).toBe(OVF_NS);
    expect(ovf.localName).toBe('Envelope');
  });

  it('references the VMDK by name and archive size; the disk capacity is the raw size', () => {
    const file = one(ovf, 'File');
    const vmdk = members[2]!;
    expect(ovfAttr(file, 'href')).toBe(vmdk.name);
    expect(Number(ovfAttr(file, 'size'))).toBe(vmdk.size);
    const disk = one(ovf, 'Disk');
    expect(ovfAttr(disk, 'fileRef')).toBe(ovfAttr(file, 'id'));
    expect(Number(ovfAttr(disk, 'capacity'))).toBe(RAW_SIZE);
    expect(ovfAttr(disk, 'capacityAllocationUnits')).toBe('byte');
    expect(ovfAttr(disk, 'format')).toBe(
      'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized',
    );
    // The data written (3.5 MiB) plus the GPT: populated, but far from the whole disk.
    const populated = Number(ovfAttr(disk, 'populatedSize'));
    expect(populated).toBeGreaterThanOrEqual(3.5 * MiB);
    expect(populated).toBeLessThan(5 * MiB);
    const diskItem = all(ovf, 'Item').find((i) => rasd(i, 'ResourceType') === '17')!;
    expect(rasd(diskItem, 'HostResource')).toBe(`ovf:/disk/${ovfAttr(disk, 'diskId')}`);
  });

  it('ProductSection class "cl" with exactly the five network properties', () => {
    const product = one(ovf, 'ProductSection');
    expect(ovfAttr(product, 'class')).toBe('cl');
    expect(one(product, 'Version').textContent).toBe('1.2.3');
    const props = all(product, 'Property');
    expect(props.map((p) => ovfAttr(p, 'key'))).toEqual(['hostname', 'ip0', 'netmask0', 'gateway0', 'dns0']);
    for (const p of props) {
      expect(ovfAttr(p, 'type')).toBe('string');
      expect(ovfAttr(p, 'userConfigurable')).toBe('true');
      expect(ovfAttr(p, 'value')).toBe('');
      expect(one(p, 'Label').textContent?.length).toBeGreaterThan(3);
      expect(one(p, 'Description').textContent?.length).toBeGreaterThan(10);
    }
    // The longest value the first boot accepts: an RFC 1123 name, dotted quads, three DNS servers.
    expect(Object.fromEntries(props.map((p) => [ovfAttr(p, 'key'), ovfAttr(p, 'qualifiers')]))).toEqual({
      hostname: 'MinLen(0),MaxLen(64)',
      ip0: 'MinLen(0),MaxLen(15)',
      netmask0: 'MinLen(0),MaxLen(15)',
      gateway0: 'MinLen(0),MaxLen(15)',
      dns0: 'MinLen(0),MaxLen(47)',
    });
    expect('255.255.255.255,255.255.255.255,255.255.255.255').toHaveLength(47);
  });

  it('in the VirtualSystem: OS, hardware, then product and annotation, as VMware lays it out', () => {
    const system = one(ovf, 'VirtualSystem');
    const sections = Array.from(system.childNodes)
      .filter((n): n is Element => n.nodeType === n.ELEMENT_NODE)
      .map((e) => e.localName);
    expect(sections).toEqual([
      'Info',
      'Name',
      'OperatingSystemSection',
      'VirtualHardwareSection',
      'ProductSection',
      'AnnotationSection',
    ]);
    expect(one(system, 'Annotation').textContent).toMatch(/^CloudLink Gateway 1\.2\.3 /);
  });

  it('one deployment option per profile, whose CPUs and memory the agent maps back to it', () => {
    const options = all(ovf, 'Configuration');
    expect(options.map((c) => ovfAttr(c, 'id'))).toEqual(['small', 'small-plus', 'medium', 'large']);
    expect(options.filter((c) => ovfAttr(c, 'default') === 'true').map((c) => ovfAttr(c, 'id'))).toEqual([
      'small',
    ]);
    const expected = { small: [1, 1024], 'small-plus': [2, 2048], medium: [4, 2048], large: [8, 4096] };
    const items = all(ovf, 'Item');
    for (const [id, [cpus, mib]] of Object.entries(expected)) {
      const own = items.filter((i) => ovfAttr(i, 'configuration') === id);
      expect(own.map((i) => rasd(i, 'ResourceType')).sort()).toEqual(['3', '4']);
      const cpu = own.find((i) => rasd(i, 'ResourceType') === '3')!;
      const mem = own.find((i) => rasd(i, 'ResourceType') === '4')!;
      expect(Number(rasd(cpu, 'VirtualQuantity'))).toBe(cpus);
      expect(rasd(mem, 'AllocationUnits')).toBe('byte * 2^20');
      expect(Number(rasd(mem, 'VirtualQuantity'))).toBe(mib);
      expect(selectProfile({ platform: 'virtual', cores: cpus!, memoryBytes: mib! * MiB }).name).toBe(id);
    }
    const ids = items.map((i) => rasd(i, 'InstanceID'));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('both OVF environment transports, a NIC on "VM Network", a CD-ROM, UEFI without Secure Boot, soft power buttons', () => {
    const hw = one(ovf, 'VirtualHardwareSection');
    expect(ovfAttr(hw, 'transport')).toBe('com.vmware.guestInfo iso');
    const items = all(hw, 'Item');
    const nic = items.find((i) => rasd(i, 'ResourceType') === '10')!;
    expect(rasd(nic, 'Connection')).toBe(ovfAttr(one(ovf, 'Network'), 'name'));
    expect(rasd(nic, 'Connection')).toBe('VM Network');
    expect(rasd(nic, 'Description')).toBe('VmxNet3 ethernet adapter on "VM Network"');
    expect(items.some((i) => rasd(i, 'ResourceType') === '15')).toBe(true);
    const config = all(hw, 'Config', VMW_NS).map((c) => [
      c.getAttributeNS(VMW_NS, 'key'),
      c.getAttributeNS(VMW_NS, 'value'),
      ovfAttr(c, 'required'),
    ]);
    expect(config).toEqual([
      ['firmware', 'efi', 'false'],
      ['bootOptions.efiSecureBootEnabled', 'false', 'false'],
      ['cpuHotAddEnabled', 'false', 'false'],
      ['memoryHotAddEnabled', 'false', 'false'],
      ['powerOpInfo.powerOffType', 'soft', 'false'],
      ['powerOpInfo.resetType', 'soft', 'false'],
      ['tools.syncTimeWithHost', 'false', 'false'],
    ]);
    const system = one(hw, 'System');
    expect(one(system, 'VirtualSystemType', VSSD_NS).textContent).toBe('vmx-17');
    expect(one(ovf, 'OperatingSystemSection').getAttributeNS(VMW_NS, 'osType')).toMatch(
      /^debian1[12]_64Guest$/,
    );
  });

  it('the manifest lists the SHA-256 of the descriptor and the disk', () => {
    const mf = members[1]!.data.toString('utf8');
    expect(mf).toBe(
      `SHA256(clgw-1.2.3.ovf)= ${sha256(members[0]!.data)}\nSHA256(clgw-1.2.3-disk1.vmdk)= ${sha256(members[2]!.data)}\n`,
    );
  });

  it('UEFI by default, BIOS (no Secure Boot key) on request; a disk of partial sectors is refused', async () => {
    const byDefault = await buildOva({
      rawDisk: raw,
      outFile: path.join(dir, 'default', 'x.ova'),
      version: '1.2.3',
      name: 'x',
    });
    const efiText = readTar(await fs.readFile(byDefault.file))[0]!.data.toString('utf8');
    expect(efiText).toContain('vmw:key="firmware" vmw:value="efi"');
    expect(efiText).toContain('vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="false"');

    const out = path.join(dir, 'bios', 'x.ova');
    const bios = await buildOva({
      rawDisk: raw,
      outFile: out,
      version: '1.2.3',
      name: 'x',
      firmware: 'bios',
    });
    const text = readTar(await fs.readFile(bios.file))[0]!.data.toString('utf8');
    expect(text).toContain('vmw:key="firmware" vmw:value="bios"');
    expect(text).not.toContain('efiSecureBootEnabled');

    const odd = path.join(dir, 'odd.img');
    await fs.writeFile(odd, Buffer.alloc(1000));
    await expect(
      buildOva({ rawDisk: odd, outFile: path.join(dir, 'bios', 'odd.ova'), version: '1.2.3' }),
    ).rejects.toMatchObject({
      name: 'ClgwError',
      code: 'INVALID_REQUEST',
      message: `disk image ${odd} must be a regular file of whole 512-byte sectors (1000 bytes)`,
    });
    expect(await fs.readdir(path.dirname(out))).toEqual(['x.ova']);
  });

  it('the same disk, version and time give the same headers and descriptor, whatever the umask', async () => {
    // Not the same bytes throughout: qemu-img gives every VMDK a random CID, and so the manifest
    // differs. What the archive writer decides (names, order, modes, sizes, mtime, no owner) does not.
    const umask = process.umask(0o077);
    try {
      const again = await buildOva({
        rawDisk: raw,
        outFile: path.join(dir, 'again', 'clgw-1.2.3.ova'),
        version: '1.2.3',
        firmware: 'efi',
        now: Date.UTC(2025, 10, 21),
      });
      const second = readTar(await fs.readFile(again.file));
      expect(second.map((m) => m.header.toString('hex'))).toEqual(
        members.map((m) => m.header.toString('hex')),
      );
      expect(second[0]!.data.equals(members[0]!.data)).toBe(true);
    } finally {
      process.umask(umask);
    }
  });

  it('xmlEscape covers the five predefined entities', () => {
    expect(xmlEscape(`a&b<c>"d"'e'`)).toBe('a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;');
  });
});
