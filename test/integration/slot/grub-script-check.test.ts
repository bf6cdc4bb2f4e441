import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from '@clgw/core/platform/exec.js';
import { BOOTCHOOSER_VARS } from '@clgw/core/slot/bootchooser.js';
import { describe, expect, it } from 'vitest';

// grub-script-check (Debian grub-common, installed by scripts/setup) parses a file with GRUB's
// own script parser.
const GRUB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../image/grub');

describe('image/grub scripts', () => {
  for (const name of ['slot-select.cfg', 'grub.cfg']) {
    it(`${name} passes grub-script-check`, async () => {
      await expect(execFile('grub-script-check', [path.join(GRUB_DIR, name)])).resolves.toBeDefined();
    });
  }

  it('grub-script-check does reject a broken copy (the check can fail)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-grubcheck-'));
    try {
      const text = await fs.readFile(path.join(GRUB_DIR, 'slot-select.cfg'), 'utf8');
      const broken = path.join(dir, 'broken.cfg');
      // Drop the last "fi": the if/else around the loop is never closed.
      await fs.writeFile(broken, text.replace(/fi\s*$/, ''));
      await expect(execFile('grub-script-check', [broken])).rejects.toThrow(/grub-script-check/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('slot-select.cfg loads exactly the bootchooser variables', async () => {
    const text = await fs.readFile(path.join(GRUB_DIR, 'slot-select.cfg'), 'utf8');
    const loads = text.split('\n').filter((l) => l.trim().startsWith('load_env'));
    expect(loads).toEqual([`load_env -f "$clgw_grubenv" ${BOOTCHOOSER_VARS.join(' ')}`]);
  });
});
