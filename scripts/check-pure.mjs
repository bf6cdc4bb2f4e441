/**
 * Holds the modules that say "Pure: no `node:*` imports" to it (DESIGN.md §3: a pure core, effects
 * at the edge): such a module, and every module it imports for its values (`import type` is
 * erased), imports no Node built-in — directly or through another of our modules. A comment can
 * drift; this check cannot. `make check` runs it.
 *
 * npm packages are not followed: what a pure module may use from one (zod, yaml, semver) is a
 * choice the review makes, not this check.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isBuiltin, REPO, sourceFiles, WORKSPACES } from './lib/sources.mjs';

const MARKER = /Pure: no `node:\*` imports/;

/** Every value import of a module: `import … from 'x'`, `export … from 'x'`, `import 'x'`. */
function valueImports(source) {
  const out = [];
  const re =
    /^\s*(import|export)\s+(type\s+)?([^'"]*?)\s*from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) {
    if (m[5]) out.push(m[5]);
    else if (!m[2] && !/^\{\s*(type\s+[\w$]+\s*(as\s+[\w$]+)?\s*,?\s*)*\}$/.test(m[3])) out.push(m[4]);
  }
  return out;
}

/** A relative import or a workspace's package entry (`@clgw/agent/x.js`) as a source file, else null. */
function resolveLocal(from, spec) {
  let target;
  if (spec.startsWith('.')) target = path.resolve(path.dirname(from), spec);
  else if (spec.startsWith('@clgw/')) {
    const [, ws, ...rest] = spec.split('/');
    target = path.join(REPO, ws === 'console' ? 'console-tui' : ws, 'src', ...rest);
  } else return null;
  return target.replace(/\.js$/, '.ts');
}

const cache = new Map();
const read = (file) => {
  if (!cache.has(file)) cache.set(file, fs.readFile(file, 'utf8'));
  return cache.get(file);
};

/** The chain of imports from `file` to a Node built-in, or null when there is none. */
async function impurity(file, seen = new Set()) {
  if (seen.has(file)) return null;
  seen.add(file);
  for (const spec of valueImports(await read(file))) {
    if (isBuiltin(spec)) return [spec];
    const next = resolveLocal(file, spec);
    if (!next) continue;
    const chain = await impurity(next, seen);
    if (chain) return [path.relative(REPO, next), ...chain];
  }
  return null;
}

const problems = [];
for (const ws of WORKSPACES) {
  for (const file of await sourceFiles(path.join(REPO, ws, 'src'))) {
    if (!MARKER.test(await read(file))) continue;
    const chain = await impurity(file);
    if (chain)
      problems.push(`${path.relative(REPO, file)} says it is pure, but imports ${chain.join(' → ')}`);
  }
}
if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`check-pure: ${p}\n`);
  process.exit(1);
}
