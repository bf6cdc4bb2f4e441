import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');

// make check runs it too; here CI's make test holds every "Pure:" module to its word as well.
it('every module that says it is pure imports no Node built-in, directly or through another', async () => {
  const { stdout, stderr } = await promisify(execFile)('node', [path.join(REPO, 'scripts/check-pure.mjs')]);
  expect(stderr).toBe('');
  expect(stdout).toBe('');
});
