import { describe, expect, it } from 'vitest';
import { mirrorFor, parseDeb822Sources, parseOneLineSources } from '../../../image/src/build/apt-sources.js';
import { MIB, PARTITION_NAMES, planDisk, SECTOR, sgdiskArgs } from '../../../image/src/build/layout.js';
import { parsePackageList } from '../../../image/src/build/rootfs.js';

describe('disk layout', () => {
  const plan = planDisk({
    bootSlotBytes: 128 * MIB,
    rootSlotBytes: 1024 * MIB + 1,
    recoveryBytes: 900 * MIB,
    dataBytes: 512 * MIB,
  });

  it('numbers the partitions as grub.cfg reads them (boot_a 3, boot_b 4, recovery 7)', () => {
    expect(plan.partitions.map((p) => `${p.number}:${p.name}`)).toEqual(
      PARTITION_NAMES.map((n, i) => `${i + 1}:${n}`),
    );
  });

  it('aligns every partition to 1 MiB, packs them without overlap and leaves room for the backup GPT', () => {
    let end = MIB;
    for (const p of plan.partitions) {
      expect((p.firstSector * SECTOR) % MIB).toBe(0);
      expect(p.sizeBytes % MIB).toBe(0);
      expect(p.firstSector * SECTOR).toBe(end);
      end += p.sizeBytes;
    }
    expect(plan.sizeBytes).toBe(end + MIB);
  });

  it('rounds sizes up to whole MiB and gives both slots of a kind the same size', () => {
    const size = (n: string) => plan.partitions.find((p) => p.name === n)!.sizeBytes;
    expect(size('root_a')).toBe(1025 * MIB);
    expect(size('root_b')).toBe(size('root_a'));
    expect(size('boot_b')).toBe(size('boot_a'));
  });

  it('refuses a size that is not a positive byte count, naming it', () => {
    expect(() =>
      planDisk({ bootSlotBytes: 0, rootSlotBytes: MIB, recoveryBytes: MIB, dataBytes: MIB }),
    ).toThrow(/bootSlotBytes must be a positive byte count, got 0/);
    expect(() =>
      planDisk({ bootSlotBytes: MIB, rootSlotBytes: Number.NaN, recoveryBytes: MIB, dataBytes: MIB }),
    ).toThrow(/rootSlotBytes/);
  });

  it('gives sgdisk one new/typecode/name triple per partition, with inclusive last sectors', () => {
    const args = sgdiskArgs(plan, 'disk.img');
    expect(args[0]).toBe('--clear');
    expect(args.at(-1)).toBe('disk.img');
    expect(args).toContain('--new=1:2048:4095');
    expect(args).toContain('--typecode=1:EF02');
    expect(args).toContain('--typecode=2:EF00');
    expect(args).toContain('--change-name=7:recovery');
  });
});

describe('apt sources (the mirror debootstrap uses, never written into the repo)', () => {
  it('reads deb822 stanzas, skipping deb-src and disabled ones', () => {
    const text = [
      'Types: deb-src',
      'URIs: http://src.example/debian',
      'Suites: bookworm',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://off.example/debian',
      'Suites: bookworm',
      'Components: main',
      'Enabled: no',
      '',
      '# a comment',
      'Types: deb',
      'URIs: http://mirror.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main contrib',
    ].join('\n');
    expect(mirrorFor(parseDeb822Sources(text), 'bookworm')).toBe('http://mirror.example/debian');
    expect(mirrorFor(parseDeb822Sources(text), 'trixie')).toBeUndefined();
  });

  it('reads one-line sources with options', () => {
    const text =
      'deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main # x\ndeb-src http://s bookworm main';
    expect(mirrorFor(parseOneLineSources(text), 'bookworm')).toBe('http://one.example/debian');
  });
});

describe('package list', () => {
  it('drops comments and blank lines', () => {
    expect(parsePackageList('# boot\nsystemd\n\nlinux-image-amd64  # the kernel\n')).toEqual([
      'systemd',
      'linux-image-amd64',
    ]);
  });

  it('refuses something that is not a package name', () => {
    expect(() => parsePackageList('systemd; rm -rf /\n')).toThrow(/is not a Debian package name/);
  });
});
