import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const CORE_SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'core/src');

export default defineConfig({
  resolve: {
    // The core's sources, not its build: the modules under test (agent/src, recovery/src, …) and
    // the tests import it as a package (`@clgw/core/x.js`), which Node resolves to core/dist; here
    // every importer gets core/src, one copy, so a test sees its own edits without a build and
    // module state (crash-point hooks, error classes) is never split between two copies.
    alias: [{ find: /^@clgw\/core\/(.*)\.js$/, replacement: `${CORE_SRC}/$1.ts` }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start servers and write slot files; two workers fit the 2-core machines.
    maxWorkers: 2,
  },
});
