/**
 * Runs real GRUB script code in user space with Debian's `grub-emu` (package grub-emu): the
 * emulator reads its grub.cfg from a host directory, reaches host files through `(host)`, and
 * sees disk image files listed in a device map as `(hd0)`… GRUB's `save_env` only writes to a
 * disk (never to `(host)`), so every grubenv under test lives in an ext2 image built with
 * `mkfs.ext2 -d` and is read back with `debugfs` (both from e2fsprogs).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';

/** Why grub-emu cannot run here, or undefined when it can (checked with a real run). */
export async function grubEmuUnavailable(workDir: string): Promise<string | undefined> {
  for (const [bin, pkg] of [
    ['grub-emu', 'grub-emu'],
    ['mkfs.ext2', 'e2fsprogs'],
    ['debugfs', 'e2fsprogs'],
  ] as const) {
    try {
      await execFile(bin, ['-V'], { timeoutMs: 10_000 });
    } catch (e) {
      const errno = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if (errno === 'ENOENT') return `${bin} is not installed (Debian package ${pkg})`;
    }
  }
  const dir = path.join(workDir, 'smoke');
  await fs.mkdir(dir, { recursive: true });
  try {
    const out = await runGrubEmu(dir, 'echo "CLGW-SMOKE [ok]"\nhalt\n');
    if (!out.includes('CLGW-SMOKE [ok]'))
      return `grub-emu ran but printed nothing usable: ${out.slice(0, 200)}`;
  } catch (e) {
    return `grub-emu cannot run here: ${(e as Error).message}`;
  }
  return undefined;
}

/**
 * Runs one GRUB script in grub-emu and returns what it printed, without terminal escapes.
 * The script must end with `halt`. `disk` becomes `(hd0)`.
 */
export async function runGrubEmu(emuDir: string, script: string, disk?: string): Promise<string> {
  await fs.mkdir(emuDir, { recursive: true });
  await fs.writeFile(path.join(emuDir, 'grub.cfg'), script);
  const deviceMap = path.join(emuDir, 'device.map');
  await fs.writeFile(deviceMap, disk ? `(hd0) ${disk}\n` : '');
  const { stdout } = await execFile('grub-emu', ['-d', emuDir, '-m', deviceMap], {
    timeoutMs: 20_000,
    input: '',
  });
  return stdout.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/** Builds an ext2 image holding `files` (relative path → content). */
export async function makeExt2Image(
  image: string,
  stagingDir: string,
  files: ReadonlyMap<string, Uint8Array | string>,
): Promise<void> {
  for (const [rel, content] of files) {
    const file = path.join(stagingDir, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
  await execFile('mkfs.ext2', ['-q', '-F', '-b', '1024', '-d', stagingDir, image, '8M']);
}

/** Reads files back out of an ext2 image (as GRUB left them). */
export async function readExt2Files(
  image: string,
  outDir: string,
  names: readonly string[],
): Promise<Map<string, Uint8Array>> {
  await fs.mkdir(outDir, { recursive: true });
  const commands = names.map((n, i) => `dump /${n} ${path.join(outDir, String(i))}`).join('\n');
  const cmdFile = path.join(outDir, 'commands');
  await fs.writeFile(cmdFile, `${commands}\n`);
  await execFile('debugfs', ['-f', cmdFile, image]);
  const out = new Map<string, Uint8Array>();
  for (const [i, n] of names.entries())
    out.set(n, new Uint8Array(await fs.readFile(path.join(outDir, String(i)))));
  return out;
}

/**
 * The `[...]` value a script printed with `echo "<marker> <key>=[...]"`. GRUB wraps long lines
 * and draws its file-read progress on the current line, so print one short field per echo.
 */
export function resultField(output: string, marker: string, key: string): string | undefined {
  const m = new RegExp(`${marker} ${key}=\\[([^\\]\\n]*)\\]`).exec(output);
  return m?.[1];
}
