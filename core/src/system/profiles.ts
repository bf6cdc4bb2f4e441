/**
 * The performance profiles of SPEC.md §6: what each allows the service containers. Detection
 * (platform, cores, memory → profile) is separate; until it runs, the appliance uses `small`.
 * Pure: no `node:*` imports.
 */
export const PROFILE_NAMES = ['small', 'small-plus', 'medium', 'large'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface Profile {
  name: ProfileName;
  /** Memory limit of each CloudLink container (tunnel, micloud). */
  cloudlinkMemoryMiB: number;
  /** Memory limit of the FreeSWITCH container. */
  freeswitchMemoryMiB: number;
  /** FreeSWITCH's extra RTP port range. */
  rtpPorts: { low: number; high: number };
}

export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  small: {
    name: 'small',
    cloudlinkMemoryMiB: 256,
    freeswitchMemoryMiB: 512,
    rtpPorts: { low: 65336, high: 65534 },
  },
  'small-plus': {
    name: 'small-plus',
    cloudlinkMemoryMiB: 256,
    freeswitchMemoryMiB: 1024,
    rtpPorts: { low: 65198, high: 65534 },
  },
  medium: {
    name: 'medium',
    cloudlinkMemoryMiB: 256,
    freeswitchMemoryMiB: 512,
    rtpPorts: { low: 65296, high: 65534 },
  },
  large: {
    name: 'large',
    cloudlinkMemoryMiB: 512,
    freeswitchMemoryMiB: 2048,
    rtpPorts: { low: 61536, high: 65534 },
  },
};

export const DEFAULT_PROFILE: ProfileName = 'small';

/** What profile selection looks at (never the PBX type). */
export interface MachineShape {
  platform: 'physical' | 'virtual' | 'kvm';
  /** Logical CPUs the appliance may use. */
  cores: number;
  /** Total memory in bytes, as the kernel reports it (a little below what the VM was given). */
  memoryBytes: number;
}

const GIB = 1024 ** 3;
/**
 * A VM given 2 GiB reports about 1.9 GiB (the kernel keeps some), so a profile's memory floor
 * is met at 90 % of its nominal size.
 */
const MEMORY_TOLERANCE = 0.9;

/** The larger profiles and what they need, largest first (SPEC.md §6: virtual machines only). */
const VM_PROFILES: readonly { name: ProfileName; cores: number; memoryGiB: number }[] = [
  { name: 'large', cores: 8, memoryGiB: 4 },
  { name: 'medium', cores: 4, memoryGiB: 2 },
  { name: 'small-plus', cores: 2, memoryGiB: 2 },
];

/**
 * Picks the profile: a physical appliance is always Small; a virtual machine (VMware or KVM) gets
 * the largest profile whose cores and memory it has, else Small. Odd shapes fall to the profile
 * both their cores and memory reach (3 cores / 1.5 GiB → Small; 64 cores / 4 GiB → Large).
 */
export function selectProfile(shape: MachineShape): Profile {
  if (shape.platform !== 'physical') {
    for (const p of VM_PROFILES) {
      if (shape.cores >= p.cores && shape.memoryBytes >= p.memoryGiB * GIB * MEMORY_TOLERANCE)
        return PROFILES[p.name];
    }
  }
  return PROFILES.small;
}

/** `4GiB`, `1.5GiB`, `512MiB`: the memory as the profile log line shows it. */
export function formatMemory(bytes: number): string {
  if (bytes >= GIB) {
    const gib = Math.round((bytes / GIB) * 10) / 10;
    return `${Number.isInteger(gib) ? gib.toFixed(0) : gib.toFixed(1)}GiB`;
  }
  return `${Math.round(bytes / 1024 ** 2)}MiB`;
}

/** `small (4GiB RAM), RTP port range: 65336-65534`: a profile and the memory it was chosen for. */
export function profileText(
  name: string,
  memoryBytes: number,
  rtpPorts: { low: number; high: number },
): string {
  return `${name} (${formatMemory(memoryBytes)} RAM), RTP port range: ${rtpPorts.low}-${rtpPorts.high}`;
}

/** `performance profile: small (4GiB RAM), RTP port range: 65336-65534` (SPEC.md §6). */
export function profileLogLine(profile: Profile, shape: MachineShape): string {
  return `performance profile: ${profileText(profile.name, shape.memoryBytes, profile.rtpPorts)}`;
}
