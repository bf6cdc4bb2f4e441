/**
 * Bundles the daemons — agent/dist/main.js, portal/dist/main.js and the console's
 * console-tui/dist/main.js, each with everything it imports, npm dependencies included (blessed
 * aside) — into one file each, agent/dist/clgw-agent.mjs, portal/dist/clgw-portal.mjs and
 * console-tui/dist/clgw-console.mjs: what the appliance's units, the simulator and the bench run.
 * `make build` runs it after tsc.
 *
 * Why one file: Node keeps every loaded module's source, module record and loader bookkeeping for
 * the life of the process, and each package brings code the agent never calls. Bundled (unused
 * exports dropped, whitespace and dead branches removed; names kept, so stack traces in the log
 * stay readable), the daemon starts with ~5 MiB less anonymous memory and ~4 MiB fewer pages of
 * node's own binary touched by the ESM loader (measured on the development VM: RssAnon 21.1 → 16.1
 * MiB, RssFile 41.3 → 37.4 MiB after loading) — a seventh of its 64 MiB peak budget (issue #8).
 * The portal, which runs all the time beside the agent under its own memory cap, gains the same way.
 * The CLIs (clgw, clgw-firstboot, clgw-log-download) run briefly and stay unbundled.
 *
 * zod is imported as `import * as z from 'zod'` (biome.json refuses `import { z }`): its `z`
 * export is one namespace object, which esbuild has to keep whole — 580 KB of the bundle, most of
 * it error messages in forty languages, JSON Schema and the schema compiler. As a namespace import,
 * only what is used stays (145 KB): the bundle went from 1.17 MB to 0.73 MB, and the agent's peak
 * RssAnon down by ~2.4 MiB in a full install and ~2.2 MiB in an adaptive one.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

for (const [workspace, name, external] of [
  ['agent', 'clgw-agent.mjs', []],
  ['portal', 'clgw-portal.mjs', []],
  // blessed stays a package of its own: it reads its terminfo files next to its sources and
  // requires its widgets by computed names, neither of which a bundle can hold.
  ['console-tui', 'clgw-console.mjs', ['blessed']],
]) {
  await build({
    external,
    entryPoints: [path.join(REPO, workspace, 'dist/main.js')],
    outfile: path.join(REPO, workspace, 'dist', name),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    // CommonJS dependencies (semver) call require() for Node's built-in modules.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
}
