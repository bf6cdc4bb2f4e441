/**
 * What `make check`'s source checks (check-pure.mjs, check-boundaries.mjs) share: the repository,
 * its workspaces, their TypeScript files, and which import names a Node built-in.
 */
import { promises as fs } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every workspace with TypeScript sources under `<workspace>/src`. */
export const WORKSPACES = ['core', 'agent', 'firstboot', 'console-tui', 'portal', 'recovery', 'image'];

const BUILTINS = new Set(builtinModules);

/** Whether an import specifier names one of Node's own modules. */
export function isBuiltin(spec) {
  return spec.startsWith('node:') || BUILTINS.has(spec.split('/')[0]);
}

/** The `.ts` files under `dir`, declaration files (`.d.ts`) included only when asked. */
export async function sourceFiles(dir, { declarations = false } = {}) {
  const out = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(p, { declarations })));
    else if (entry.name.endsWith('.ts') && (declarations || !entry.name.endsWith('.d.ts'))) out.push(p);
  }
  return out;
}
