import { describe, expect, it } from 'vitest';
import { beforeKernel, serialTail } from '../../qemu/machine.js';

// Lines as the lab image's serial console shows them under OVMF (from a `make e2e` run).
const CLEAR = '\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H';
const firmware = `${CLEAR}BdsDxe: loading Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)\r\nBdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)\r\n`;
const kernel =
  '[    0.000000] Linux version 6.1.0-28-amd64\r\n[    0.000000] secureboot: Secure boot disabled\r\n';
const update =
  '[  367.985508] node[516]: {"msg":"update state: rebooting"}\r\n[  370.573544] reboot: Restarting system\r\n[  370.573779] reboot: machine restart\r\n';

describe('the e2e harness reading the serial line', () => {
  it('knows when the guest is in its firmware or boot loader', () => {
    expect(beforeKernel('')).toBe(true); // powered on, nothing yet
    expect(beforeKernel(CLEAR)).toBe(true);
    expect(beforeKernel(firmware)).toBe(true);
    expect(beforeKernel(firmware + kernel)).toBe(false);
    expect(beforeKernel(firmware + kernel + update)).toBe(true); // restarted, nothing since
    expect(beforeKernel(firmware + kernel + update + CLEAR)).toBe(true); // the firmware cleared the screen, then hung
    expect(beforeKernel(firmware + kernel + update + firmware)).toBe(true);
    expect(beforeKernel(firmware + kernel + update + firmware + kernel)).toBe(false);
  });

  it('shows the last lines without the terminal escapes', () => {
    expect(serialTail(firmware + kernel, 2)).toEqual([
      '[    0.000000] Linux version 6.1.0-28-amd64',
      '[    0.000000] secureboot: Secure boot disabled',
    ]);
    expect(serialTail(firmware, 5)[0]).toBe(
      'BdsDxe: loading Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)',
    );
    expect(serialTail(`${'x'.repeat(300)}\n`, 1)[0]).toHaveLength(201);
  });
});
