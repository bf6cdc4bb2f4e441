/**
 * The download mirror for tests: a temporary release tree served by the real mirror
 * (scripts/lib/mirror.ts) with the shared test CA in .cache/test/mirror-tls, plus helpers for
 * deterministic artifacts.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Fault, type Mirror, type PathStats, startMirror } from '../../scripts/lib/mirror.js';
import type { KeyCert } from '../../scripts/lib/mirror-pki.js';

export type { Fault, Mirror, PathStats };

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Shared by all test workers; the PKI there is made once and reused. */
export const TEST_TLS_DIR = path.join(repoRoot, '.cache/test/mirror-tls');

export interface TestMirror extends Mirror {
  /** The served directory (removed by close()). */
  tree: string;
}

/** Writes `files` (URL path → content) into a fresh temporary tree and serves it. */
export async function startTestMirror(
  files: Record<string, Buffer | string>,
  options: { serverCert?: KeyCert } = {},
): Promise<TestMirror> {
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-mirror-'));
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(tree, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
  const mirror = await startMirror({
    tree,
    tlsDir: TEST_TLS_DIR,
    ...(options.serverCert ? { serverCert: options.serverCert } : {}),
  });
  return {
    ...mirror,
    tree,
    close: async () => {
      await mirror.close();
      await fs.rm(tree, { recursive: true, force: true });
    },
  };
}

/** `size` deterministic pseudo-random bytes (xorshift), different per seed. */
export function artifactBytes(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
