import si from 'systeminformation';
import type { Platform } from '../release/schema.js';
import type { MachineShape } from './profiles.js';

/**
 * What the hypervisor (if any) says this machine is: VMware → `virtual`, KVM/QEMU → `kvm`, bare
 * metal → `physical`; undefined when it cannot tell (another hypervisor, a container).
 */
export function platformFromSystem(system: {
  virtual: boolean;
  virtualHost?: string;
  manufacturer?: string;
}): Platform | undefined {
  if (!system.virtual) return 'physical';
  const host = `${system.virtualHost ?? ''} ${system.manufacturer ?? ''}`.toLowerCase();
  if (host.includes('vmware')) return 'virtual';
  if (host.includes('kvm') || host.includes('qemu')) return 'kvm';
  return undefined;
}

/**
 * The machine's shape through `systeminformation`. The platform is what the hypervisor says,
 * else the image's own (configured: the OVA, qcow2 and raw images each say what they are) — the
 * profile follows the machine actually running; which release to install follows the image.
 */
export async function detectMachine(
  configured: Platform,
): Promise<{ shape: MachineShape; detected: Platform | undefined }> {
  const [system, cpu, mem] = await Promise.all([si.system(), si.cpu(), si.mem()]);
  const detected = platformFromSystem(system);
  return { shape: { platform: detected ?? configured, cores: cpu.cores, memoryBytes: mem.total }, detected };
}
