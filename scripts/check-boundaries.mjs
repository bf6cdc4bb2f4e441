/**
 * Holds the workspaces to the layout of README.md: `core/` is the library everyone shares and
 * depends on no other workspace; the agent's clients (the console, the portal) may use what the
 * agent exports for them (its package.json `exports`: the API client, the status and portal
 * contracts) and nothing else of it; no other workspace uses the agent. A module reaches another
 * workspace only through that workspace's package entry (`@clgw/core/x.js`), never by a relative
 * path into its tree, and every npm package a workspace imports is one its package.json declares.
 * Type-only imports count: they tie the builds together just the same. `make check` runs it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isBuiltin, REPO, sourceFiles, WORKSPACES } from './lib/sources.mjs';

/** Which workspaces each may import (by package name). */
const ALLOWED = {
  core: [],
  agent: ['@clgw/core'],
  firstboot: ['@clgw/core'],
  recovery: ['@clgw/core'],
  image: ['@clgw/core'],
  'console-tui': ['@clgw/core', '@clgw/agent'],
  portal: ['@clgw/core', '@clgw/agent'],
};

/** Every import specifier of a module, type-only ones included. */
function specifiers(source) {
  const re =
    /^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  return [...source.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]);
}

const packageName = (spec) =>
  spec
    .split('/')
    .slice(0, spec.startsWith('@') ? 2 : 1)
    .join('/');

const manifests = {};
for (const ws of WORKSPACES)
  manifests[ws] = JSON.parse(await fs.readFile(path.join(REPO, ws, 'package.json'), 'utf8'));
const workspaceOf = Object.fromEntries(Object.entries(manifests).map(([ws, m]) => [m.name, ws]));

/** Whether `sub` (`./x.js`) is a path the package's `exports` map offers. */
function exported(manifest, sub) {
  return Object.keys(manifest.exports ?? {}).some((key) =>
    key.endsWith('*') ? sub.startsWith(key.slice(0, -1)) : key === sub,
  );
}

const problems = [];
for (const ws of WORKSPACES) {
  const allowed = ALLOWED[ws];
  if (!allowed) {
    problems.push(`${ws}: no rule in ALLOWED for this workspace`);
    continue;
  }
  const root = path.join(REPO, ws, 'src');
  const declared = new Set(Object.keys(manifests[ws].dependencies ?? {}));
  for (const file of await sourceFiles(root, { declarations: true })) {
    const where = path.relative(REPO, file);
    for (const spec of specifiers(await fs.readFile(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (path.relative(root, target).startsWith('..'))
          problems.push(
            `${where}: '${spec}' leaves ${ws}/src; another workspace is reached by its package name`,
          );
        continue;
      }
      if (isBuiltin(spec)) continue;
      const name = packageName(spec);
      const target = workspaceOf[name];
      if (target === ws)
        problems.push(`${where}: '${spec}' is its own workspace; import it by a relative path`);
      else if (target !== undefined && !allowed.includes(name))
        problems.push(
          `${where}: '${spec}': ${ws} may import only ${allowed.join(', ') || 'no other workspace'}`,
        );
      else if (target !== undefined && !exported(manifests[target], `.${spec.slice(name.length)}`))
        problems.push(`${where}: '${spec}' is not in ${target}/package.json's exports (its public entry)`);
      else if (!declared.has(name))
        problems.push(`${where}: '${spec}': ${name} is not in ${ws}/package.json's dependencies`);
    }
  }
}

if (problems.length) {
  process.stderr.write(`workspace boundaries broken:\n${problems.map((p) => `  ${p}\n`).join('')}`);
  process.exit(1);
}
