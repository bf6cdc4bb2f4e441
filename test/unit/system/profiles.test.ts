import {
  formatMemory,
  type MachineShape,
  profileLogLine,
  selectProfile,
} from '@clgw/core/system/profiles.js';
import { describe, expect, it } from 'vitest';
import { platformFromSystem, systemFromFirmware } from '../../../agent/src/system/machine.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** platform, cores, memory → profile. */
const shapes: [MachineShape['platform'], number, number, string][] = [
  ['physical', 1, 1 * GiB, 'small'],
  ['physical', 4, 4 * GiB, 'small'], // a physical appliance is always Small
  ['physical', 64, 256 * GiB, 'small'],
  ['virtual', 1, 1 * GiB, 'small'],
  ['virtual', 2, 2 * GiB, 'small-plus'],
  ['virtual', 2, 1.93 * GiB, 'small-plus'], // what a 2 GiB VM reports
  ['virtual', 2, 1.7 * GiB, 'small'], // below 90 % of 2 GiB
  ['virtual', 3, 1.5 * GiB, 'small'],
  ['virtual', 3, 2 * GiB, 'small-plus'],
  ['virtual', 4, 2 * GiB, 'medium'],
  ['virtual', 4, 3 * GiB, 'medium'],
  ['virtual', 4, 8 * GiB, 'medium'], // memory alone does not make Large
  ['virtual', 6, 4 * GiB, 'medium'],
  ['virtual', 8, 4 * GiB, 'large'],
  ['virtual', 8, 3.9 * GiB, 'large'],
  ['virtual', 8, 2 * GiB, 'medium'], // cores alone do not either
  ['virtual', 64, 4 * GiB, 'large'],
  ['virtual', 64, 1 * GiB, 'small'],
  ['virtual', 1, 64 * GiB, 'small'],
  ['kvm', 2, 2 * GiB, 'small-plus'],
  ['kvm', 8, 16 * GiB, 'large'],
  ['kvm', 1, 512 * MiB, 'small'],
];

describe('selectProfile over machine shapes', () => {
  it.each(shapes)('%s, %i cores, %d bytes → %s', (platform, cores, memoryBytes, name) => {
    expect(selectProfile({ platform, cores, memoryBytes }).name).toBe(name);
  });

  it('gives each profile its SPEC §6 limits', () => {
    expect(selectProfile({ platform: 'virtual', cores: 8, memoryBytes: 4 * GiB })).toEqual({
      name: 'large',
      cloudlinkMemoryMiB: 512,
      freeswitchMemoryMiB: 2048,
      rtpPorts: { low: 61536, high: 65534 },
    });
  });
});

describe('the profile log line', () => {
  it('says the profile, the memory and the RTP range', () => {
    const shape: MachineShape = { platform: 'physical', cores: 4, memoryBytes: 4 * GiB };
    expect(profileLogLine(selectProfile(shape), shape)).toBe(
      'performance profile: small (4GiB RAM), RTP port range: 65336-65534',
    );
    expect(formatMemory(1.5 * GiB)).toBe('1.5GiB');
    expect(formatMemory(1.93 * GiB)).toBe('1.9GiB');
    expect(formatMemory(512 * MiB)).toBe('512MiB');
  });
});

describe('platformFromSystem', () => {
  it.each([
    [{ virtual: false }, 'physical'],
    [{ virtual: true, virtualHost: 'VMware' }, 'virtual'],
    [{ virtual: true, virtualHost: '', manufacturer: 'VMware, Inc.' }, 'virtual'],
    [{ virtual: true, virtualHost: 'KVM' }, 'kvm'],
    [{ virtual: true, virtualHost: 'QEMU' }, 'kvm'],
    [{ virtual: true, virtualHost: 'Hyper-V' }, undefined],
  ] as const)('%j → %s', (system, platform) => {
    expect(platformFromSystem(system)).toBe(platform);
  });
});

describe('systemFromFirmware', () => {
  it.each([
    [{ sysVendor: 'VMware, Inc.', productName: 'VMware Virtual Platform', cpuHypervisor: true }, 'virtual'],
    [{ sysVendor: 'QEMU', productName: 'Standard PC (Q35 + ICH9, 2009)', cpuHypervisor: true }, 'kvm'],
    [{ sysVendor: 'Red Hat', productName: 'KVM', cpuHypervisor: true }, 'kvm'],
    [{ sysVendor: 'Dell Inc.', productName: 'PowerEdge R240', cpuHypervisor: false }, 'physical'],
    [{ sysVendor: 'Microsoft Corporation', productName: 'Virtual Machine', cpuHypervisor: true }, undefined],
    // A container on a VM: no DMI, the CPU says hypervisor, whose is not known.
    [{ sysVendor: '', productName: '', cpuHypervisor: true }, undefined],
  ] as const)('%j → %s', (facts, platform) => {
    expect(platformFromSystem(systemFromFirmware(facts))).toBe(platform);
  });
});
