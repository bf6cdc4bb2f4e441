import { describe, expect, it } from 'vitest';
import {
  bootedSlotFromCmdline,
  isRecoveryBoot,
  parseKernelCmdline,
} from '../../../agent/src/slot/cmdline.js';

const GRUB_A =
  'BOOT_IMAGE=/vmlinuz root=PARTLABEL=root_a ro rootwait clgw.slot=A console=tty0 console=ttyS0,115200 panic=10\n';

describe('bootedSlotFromCmdline', () => {
  it('reads the slot grub.cfg puts on the command line', () => {
    expect(bootedSlotFromCmdline(GRUB_A)).toBe('A');
    expect(bootedSlotFromCmdline(GRUB_A.replace('clgw.slot=A', 'clgw.slot=B'))).toBe('B');
    expect(bootedSlotFromCmdline('clgw.slot=B')).toBe('B');
  });

  it('is undefined when absent or not exactly A or B', () => {
    expect(bootedSlotFromCmdline('')).toBeUndefined();
    expect(bootedSlotFromCmdline('root=/dev/sda2 quiet')).toBeUndefined();
    for (const bad of [
      'clgw.slot=C',
      'clgw.slot=a',
      'clgw.slot=',
      'clgw.slot',
      'clgw.slot=AB',
      'clgw.slot=A,B',
    ]) {
      expect(bootedSlotFromCmdline(bad), bad).toBeUndefined();
    }
  });

  it('lets the last occurrence win, like the kernel', () => {
    expect(bootedSlotFromCmdline('clgw.slot=A quiet clgw.slot=B')).toBe('B');
    expect(bootedSlotFromCmdline('clgw.slot=B clgw.slot=A')).toBe('A');
    expect(bootedSlotFromCmdline('clgw.slot=A clgw.slot=X')).toBeUndefined();
  });

  it('ignores look-alikes and other parameters', () => {
    expect(bootedSlotFromCmdline('xclgw.slot=A')).toBeUndefined();
    expect(bootedSlotFromCmdline('clgw.slots=A')).toBeUndefined();
    expect(bootedSlotFromCmdline('rauc.slot=A')).toBeUndefined();
    expect(bootedSlotFromCmdline('clgw.slot=B foo=clgw.slot=A')).toBe('B');
  });

  it('splits at any kernel whitespace', () => {
    expect(bootedSlotFromCmdline('quiet\tclgw.slot=B\n')).toBe('B');
    expect(bootedSlotFromCmdline('  clgw.slot=A  ')).toBe('A');
  });

  it('handles quotes like the kernel', () => {
    expect(bootedSlotFromCmdline('clgw.slot="B"')).toBe('B');
    expect(bootedSlotFromCmdline('"clgw.slot=B"')).toBe('B');
    // Text inside another parameter's quoted value is not a parameter.
    expect(bootedSlotFromCmdline('clgw.slot=A dyndbg="file x clgw.slot=B +p"')).toBe('A');
    expect(bootedSlotFromCmdline('opt="a b" clgw.slot=B')).toBe('B');
  });

  it('stops at a bare "--" (the rest belongs to init)', () => {
    expect(bootedSlotFromCmdline('clgw.slot=A -- clgw.slot=B')).toBe('A');
    expect(bootedSlotFromCmdline('quiet -- clgw.slot=B')).toBeUndefined();
  });
});

describe('isRecoveryBoot', () => {
  it('is true only for clgw.recovery=1', () => {
    expect(isRecoveryBoot('root=PARTLABEL=recovery ro clgw.recovery=1 console=ttyS0')).toBe(true);
    expect(isRecoveryBoot(GRUB_A)).toBe(false);
    for (const no of [
      'clgw.recovery=0',
      'clgw.recovery',
      'clgw.recovery=',
      'clgw.recovery=yes',
      'clgw.recovery=10',
    ]) {
      expect(isRecoveryBoot(no), no).toBe(false);
    }
    expect(isRecoveryBoot('clgw.recovery=1 clgw.recovery=0')).toBe(false);
    expect(isRecoveryBoot('clgw.recovery=0 clgw.recovery=1')).toBe(true);
    expect(isRecoveryBoot('clgw.recovery="1"')).toBe(true);
    expect(isRecoveryBoot('-- clgw.recovery=1')).toBe(false);
  });
});

describe('parseKernelCmdline', () => {
  it('splits like the kernel', () => {
    expect(parseKernelCmdline('a b=1 c= "d=e f" g="h i" "j" k="" --x')).toEqual([
      { name: 'a', value: undefined },
      { name: 'b', value: '1' },
      { name: 'c', value: '' },
      { name: 'd', value: 'e f' },
      { name: 'g', value: 'h i' },
      { name: 'j', value: undefined },
      { name: 'k', value: '' },
      { name: '--x', value: undefined },
    ]);
    expect(parseKernelCmdline('')).toEqual([]);
    expect(parseKernelCmdline('a -- b')).toEqual([{ name: 'a', value: undefined }]);
    expect(parseKernelCmdline('x="')).toEqual([{ name: 'x', value: '' }]);
  });
});
