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
