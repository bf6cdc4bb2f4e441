/**
 * The support CA in an image build (issue 16, audit D2): `make image KEYS=DIR` (the image CLI as a
 * process) requires `DIR/support-ca.pub` and never makes up a CA for a vendor's build, nor takes
 * the CA's private key beside the signing key; a development build makes its development CA once.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ensureDevSupportCa,
  requireSupportCa,
  SUPPORT_CA_FILES,
  saveKeys,
} from '../../../image/src/release/index.js';
import { REPO, testKeys } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const CLI = path.join(REPO, 'image/src/build/cli.ts');
// tsx's loader by absolute URL: `--import tsx` would be resolved from the (temporary) cwd.
const TSX = pathToFileURL(path.join(REPO, 'node_modules/tsx/dist/loader.mjs')).href;
const PUBLIC_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFx3pBLo2fGmGv7b1cXq9sWqqs1bS0kYbQ9y7cHbWm1T vendor support CA\n';

const noKeygen = existsSync('/usr/bin/ssh-keygen')
  ? undefined
  : '/usr/bin/ssh-keygen not installed (scripts/setup console installs openssh-client)';
if (noKeygen) recordSkip('test/integration/image/support-ca.test.ts (development CA)', noKeygen);

let dir: string;
let keys: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-image-ca-'));
  keys = path.join(dir, 'keys');
  await saveKeys(keys, testKeys());
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** `clgw-image --keys DIR --out …`, as `make image KEYS=DIR` runs it; it must fail before building. */
function imageBuild(): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', TSX, CLI, '--keys', keys, '--out', path.join(dir, 'out')],
      { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('make image KEYS=DIR', () => {
  it('fails naming DIR/support-ca.pub when it is missing, and makes no support CA', async () => {
    const before = (await fs.readdir(keys)).sort();
    const r = await imageBuild();
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `clgw-image: CONFIG_INVALID: ${keys}/support-ca.pub is missing: images built with KEYS=${keys} trust the support CA's public key from there (clgw-release keys writes it); no development CA is made for them\n`,
    );
    expect(r.stdout).not.toContain('DEVELOPMENT KEYS');
    expect((await fs.readdir(keys)).sort()).toEqual(before);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it("refuses the support CA's private key beside the signing key", async () => {
    await fs.writeFile(path.join(keys, SUPPORT_CA_FILES.pub), PUBLIC_KEY);
    await fs.writeFile(path.join(keys, SUPPORT_CA_FILES.key), 'not read\n', { mode: 0o600 });
    const r = await imageBuild();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `clgw-image: CONFIG_INVALID: ${keys}/support-ca is the support CA's private key, beside the release signing key: move it to the CA directory kept offline (clgw-release keys --ca-out)`,
    );
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('takes the public key in DIR as it is (requireSupportCa)', async () => {
    await fs.writeFile(path.join(keys, SUPPORT_CA_FILES.pub), `# the vendor's\n${PUBLIC_KEY}`);
    expect(await requireSupportCa(keys)).toBe(PUBLIC_KEY);
    expect((await fs.readdir(keys)).filter((f) => f.startsWith('support-ca'))).toEqual(['support-ca.pub']);
  });
});

describe.skipIf(noKeygen)('make image without KEYS', () => {
  it('makes its development support CA once, and says when it did (ensureDevSupportCa)', async () => {
    const first = await ensureDevSupportCa(keys);
    expect(first.generated).toBe(true);
    expect(first.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ clgw development support CA\n$/);
    expect((await fs.stat(path.join(keys, SUPPORT_CA_FILES.key))).mode & 0o777).toBe(0o600);
    const again = await ensureDevSupportCa(keys);
    expect(again).toEqual({ publicKey: first.publicKey, generated: false });
  });
});
