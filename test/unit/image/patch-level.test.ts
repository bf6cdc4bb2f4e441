import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseOsRelease, patchLevelOf } from '@clgw/core/system/os-release.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { osRelease, patchLevelOfTree } from '../../../image/src/build/tree.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-patch-level-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function tree(name: string, dpkgLog?: string): Promise<string> {
  const root = path.join(dir, name);
  await fs.mkdir(path.join(root, 'var/log'), { recursive: true });
  if (dpkgLog !== undefined) await fs.writeFile(path.join(root, 'var/log/dpkg.log'), dpkgLog);
  return root;
}

describe("the image's OS patch level", () => {
  it("is the date of dpkg's last change, and os-release carries it for the agent to read", async () => {
    const root = await tree(
      'ok',
      [
        '2026-11-30 23:59:01 startup archives unpack',
        '2026-12-01 00:00:02 status installed base-files:amd64 12.4+deb12u8',
        '2026-12-02 11:16:31 status installed initramfs-tools:all 0.142+deb12u3',
        '',
      ].join('\n'),
    );
    const level = await patchLevelOfTree(root);
    expect(level).toBe('2026-12-02');
    expect(patchLevelOf(parseOsRelease(osRelease('1.2.0', level)))).toBe('2026-12-02');
  });

  it('a tree without a dated dpkg log stops the build, naming the file', async () => {
    await expect(patchLevelOfTree(await tree('none'))).rejects.toMatchObject({
      code: 'IMAGE_BUILD_FAILED',
      message: expect.stringContaining('none/var/log/dpkg.log'),
    });
    await expect(patchLevelOfTree(await tree('empty', 'no dates here\n'))).rejects.toMatchObject({
      code: 'IMAGE_BUILD_FAILED',
      message: expect.stringContaining('records no dated package change'),
    });
  });
});
