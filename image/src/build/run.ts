import { type ExecOptions, type ExecResult, execFile } from '@clgw/core/platform/exec.js';

/**
 * The builder's programs (debootstrap, mkfs, qemu-img…) run for minutes on large trees: the
 * agent's 60 s default is for appliance commands, not for these.
 */
export function run(bin: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return execFile(bin, args, { timeoutMs: 30 * 60_000, maxBuffer: 64 * 1024 * 1024, ...options });
}
