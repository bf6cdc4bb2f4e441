/// <reference path="../types/systeminformation-memory.d.ts" />
import { promises as fs } from 'node:fs';
import os from 'node:os';
import type { Platform } from '@clgw/core/release/schema.js';
import type { MachineShape } from '@clgw/core/system/profiles.js';

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
 * Whether the machine is virtual, and whose, from what the firmware (DMI: `sys_vendor`,
 * `product_name`) and the CPU (the `hypervisor` flag of /proc/cpuinfo) say — the facts
 * systeminformation's `system()` uses on Linux, without its subprocesses. Pure.
 */
export function systemFromFirmware(facts: {
  sysVendor: string;
  productName: string;
  cpuHypervisor: boolean;
}): { virtual: boolean; virtualHost?: string; manufacturer: string } {
  const vendor = facts.sysVendor.trim();
  const product = facts.productName.trim().toLowerCase();
  const v = vendor.toLowerCase();
  const host =
    v.startsWith('vmware') || product.startsWith('vmware')
      ? 'VMware'
      : v === 'qemu' || product.includes('qemu')
        ? 'QEMU'
        : product === 'kvm'
          ? 'KVM'
          : v === 'xen' || product.includes('hvm domu')
            ? 'Xen'
            : product === 'virtualbox' || v.includes('innotek')
              ? 'VirtualBox'
              : product === 'virtual machine' && v.startsWith('microsoft')
                ? 'Hyper-V'
                : undefined;
  const virtual = facts.cpuHypervisor || host !== undefined;
  return { virtual, ...(host ? { virtualHost: host } : {}), manufacturer: vendor };
}

/**
 * The machine's shape. The platform is what the hypervisor says, else the image's own
 * (configured: the OVA, qcow2 and raw images each say what they are) — the profile follows the
 * machine actually running; which release to install follows the image.
 *
 * Memory is systeminformation's `mem()` (MemTotal of /proc/meminfo, read with `fs`), loaded here,
 * once, at start. Its other machine facts are not used: on Linux `system()` starts four shells and
 * thirteen programs (`dmidecode`, which the appliance does not have; `cat` of the DMI files; `ls
 * /dev/disk/by-id`; `dmesg | grep`, which the unit's ProtectKernelLogs= refuses), three of them
 * with execSync, which held the event loop ~230 ms on the development VM; `cpu()` runs `lscpu`
 * twice and `dmidecode`, for a core count that is `os.cpus().length` anyway. The firmware's vendor
 * and product (DMI in /sys) and the CPU's `hypervisor` flag are read here directly instead: the
 * files `system()` ends up reading, without a subprocess.
 */
export async function detectMachine(
  configured: Platform,
): Promise<{ shape: MachineShape; detected: Platform | undefined }> {
  // The memory module alone: the package's index loads all twenty (bundled agent, idle RssAnon
  // ~0.7 MiB over no systeminformation this way, ~1.7 MiB through the index; bundle +60 KB, not
  // +440 KB).
  const si = await import('systeminformation/lib/memory.js');
  const read = (file: string) => fs.readFile(file, 'utf8').catch(() => '');
  const [sysVendor, productName, cpuinfo, memory] = await Promise.all([
    read('/sys/class/dmi/id/sys_vendor'),
    read('/sys/class/dmi/id/product_name'),
    read('/proc/cpuinfo'),
    si.mem(),
  ]);
  const cpuHypervisor = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  const detected =
    sysVendor || productName || cpuinfo
      ? platformFromSystem(systemFromFirmware({ sysVendor, productName, cpuHypervisor }))
      : undefined;
  return {
    shape: { platform: detected ?? configured, cores: os.cpus().length, memoryBytes: memory.total },
    detected,
  };
}
