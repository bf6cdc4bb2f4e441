/**
 * detectMachine on the machine the tests run on: memory as the kernel reports it (MemTotal of
 * /proc/meminfo), the cores Node sees, the platform from this machine's own DMI and CPU flags —
 * and no process started on the way (systeminformation shells out for most of its facts).
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { detectMachine, platformFromSystem, systemFromFirmware } from '../../../agent/src/system/machine.js';

const childProcess = createRequire(import.meta.url)('node:child_process') as Record<string, unknown>;
const LAUNCHERS = ['spawn', 'exec', 'execFile', 'fork', 'spawnSync', 'execSync', 'execFileSync'] as const;
const originals = new Map(LAUNCHERS.map((name) => [name, childProcess[name]]));
afterEach(() => {
  for (const [name, fn] of originals) childProcess[name] = fn;
});

const read = (file: string) => fs.readFile(file, 'utf8').catch(() => '');

describe('detectMachine', () => {
  it('reads memory, cores and the hypervisor without starting a process', async () => {
    // Replaced before systeminformation is first loaded: it keeps the functions it found then.
    const started: string[] = [];
    for (const name of LAUNCHERS) {
      const original = originals.get(name) as (...args: unknown[]) => unknown;
      childProcess[name] = (...args: unknown[]) => {
        started.push(`${name} ${String(args[0])}`);
        return original(...args);
      };
    }
    const { shape, detected } = await detectMachine('virtual');
    expect(started).toEqual([]);

    const memTotalKiB = Number(/^MemTotal:\s+(\d+) kB$/m.exec(await read('/proc/meminfo'))?.[1]);
    expect(memTotalKiB).toBeGreaterThan(0);
    expect(shape.memoryBytes).toBe(memTotalKiB * 1024);
    expect(shape.cores).toBe(os.cpus().length);

    const [sysVendor, productName, cpuinfo] = await Promise.all([
      read('/sys/class/dmi/id/sys_vendor'),
      read('/sys/class/dmi/id/product_name'),
      read('/proc/cpuinfo'),
    ]);
    const cpuHypervisor = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
    expect(detected).toBe(platformFromSystem(systemFromFirmware({ sysVendor, productName, cpuHypervisor })));
    expect(shape.platform).toBe(detected ?? 'virtual');
  });

  it("falls back to the image's own platform when the hypervisor is not known", async () => {
    const { shape, detected } = await detectMachine('kvm');
    expect(shape.platform).toBe(detected ?? 'kvm');
  });
});
