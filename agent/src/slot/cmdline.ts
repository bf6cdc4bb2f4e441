/**
 * Reads what GRUB put on the kernel command line (`/proc/cmdline`): `clgw.slot=A|B` for a slot
 * boot, `clgw.recovery=1` for the recovery system. Parameters are split the way the Linux kernel
 * splits them (`next_arg` in kernel/params.c), so a quoted value of another parameter that merely
 * contains the text `clgw.slot=B` is not mistaken for ours.
 *
 * Pure: no `node:*` imports.
 */
import type { SlotName } from '@clgw/core/platform/paths.js';

export interface KernelParam {
  name: string;
  /** Undefined for a bare flag (`quiet`), "" for `name=`. */
  value: string | undefined;
}

// The kernel's isspace() on the command line.
const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

/**
 * Splits a kernel command line into parameters like the kernel does: whitespace separates them
 * except inside double quotes; a value's surrounding quotes and a fully quoted parameter's quotes
 * are dropped. Parsing stops at a bare `--`, after which everything belongs to init and is not a
 * kernel parameter.
 */
export function parseKernelCmdline(text: string): KernelParam[] {
  const params: KernelParam[] = [];
  const n = text.length;
  let i = 0;
  for (;;) {
    while (i < n && SPACE.has(text[i]!)) i++;
    if (i >= n) break;
    let quoted = false;
    let inQuote = false;
    if (text[i] === '"') {
      i++;
      quoted = true;
      inQuote = true;
    }
    const start = i;
    let eq = -1;
    for (; i < n; i++) {
      const c = text[i]!;
      if (SPACE.has(c) && !inQuote) break;
      if (eq < 0 && c === '=') eq = i;
      if (c === '"') inQuote = !inQuote;
    }
    const closingQuote = text[i - 1] === '"';
    let param: KernelParam;
    if (eq < 0) {
      const end = quoted && closingQuote && i - 1 >= start ? i - 1 : i;
      param = { name: text.slice(start, end), value: undefined };
    } else {
      let valueStart = eq + 1;
      let strip = quoted;
      if (text[valueStart] === '"') {
        valueStart++;
        strip = true;
      }
      const end = strip && closingQuote && i - 1 >= valueStart ? i - 1 : i;
      param = { name: text.slice(start, eq), value: text.slice(valueStart, end) };
    }
    if (param.name === '--' && param.value === undefined) break;
    params.push(param);
  }
  return params;
}

function lastValue(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const p of parseKernelCmdline(text)) if (p.name === name) value = p.value;
  return value;
}

/**
 * The slot GRUB booted, from `clgw.slot=A|B`; when given twice the last one counts (as for any
 * kernel parameter). Undefined when absent or when the last one is not exactly A or B.
 */
export function bootedSlotFromCmdline(text: string): SlotName | undefined {
  const value = lastValue(text, 'clgw.slot');
  return value === 'A' || value === 'B' ? value : undefined;
}

/** True when this is a recovery boot: the last `clgw.recovery` parameter is exactly `=1`. */
export function isRecoveryBoot(text: string): boolean {
  return lastValue(text, 'clgw.recovery') === '1';
}
