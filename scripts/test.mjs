#!/usr/bin/env node
// Runs every test tier with vitest and ends with the plain line `N passed, M failed[, K skipped]`
// summed over the tiers; the reason for each skip is printed above it.
// Usage: node scripts/test.mjs [tier...]   tiers: unit, integration, e2e, powercut (default: all);
// selections run alone: containers (make e2e-containers), portal (make e2e-portal: the browser
// and the diagnostics end-to-end tests), console (make e2e-console: the console's end-to-end tests in tmux)
// The powercut tier is the power-cut torture run with POWERCUT_CUTS cuts (default 100).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const allTiers = ['unit', 'integration', 'e2e', 'powercut'];
/** Selections run alone (`make e2e-containers`, `make e2e-portal`, `make e2e-console`): their tests also belong to the tiers above. */
const selections = {
  containers: ['test/unit/containers', 'test/integration/containers'],
  portal: ['test/e2e/portal', 'test/integration/diagnostics'],
  console: ['test/e2e/console'],
};
const tiers = process.argv.slice(2).length ? process.argv.slice(2) : allTiers;
const cache = path.join(root, '.cache/test');
mkdirSync(cache, { recursive: true });
const skipLog = path.join(cache, 'skips.log');
rmSync(skipLog, { force: true });

let passed = 0;
let failed = 0;
let skipped = 0;
/** Each failed test, repeated just above the summary: CI shows only the tail of the output. */
const failures = [];
for (const tier of tiers) {
  if (!allTiers.includes(tier) && !(tier in selections)) {
    const known = [...allTiers, ...Object.keys(selections)].join(', ');
    console.error(`scripts/test.mjs: unknown tier '${tier}' (known: ${known})`);
    process.exit(2);
  }
  const dirs = selections[tier] ?? [path.join('test', tier)];
  if (!dirs.some((d) => existsSync(path.join(root, d)))) continue;
  const report = path.join(cache, `${tier}.json`);
  rmSync(report, { force: true });
  console.log(`\n=== ${tier} tests ===`);
  const run = spawnSync(
    'npx',
    ['vitest', 'run', ...dirs, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
    { cwd: root, stdio: 'inherit', env: { ...process.env, CLGW_SKIP_LOG: skipLog } },
  );
  if (!existsSync(report)) {
    console.error(
      `${tier}: vitest produced no report (exit ${run.status}); counting the tier as one failure`,
    );
    failed += 1;
    continue;
  }
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed += json.numPassedTests;
  failed += json.numFailedTests;
  skipped += json.numPendingTests + json.numTodoTests;
  // A suite that fails to load (syntax error, failing beforeAll) has no failed tests of its own.
  for (const suite of json.testResults) {
    const file = path.relative(root, suite.name);
    for (const a of suite.assertionResults) {
      if (a.status !== 'failed') continue;
      const cause = (a.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300);
      failures.push(`  ${tier}: ${file} > ${a.fullName}\n      ${cause}`);
    }
    if (suite.status === 'failed' && suite.assertionResults.every((a) => a.status !== 'failed')) {
      console.error(`${tier}: ${file} failed to run: ${suite.message ?? ''}`);
      failures.push(`  ${tier}: ${file} failed to run: ${(suite.message ?? '').split('\n')[0]}`);
      failed += 1;
    }
  }
}

if (skipped > 0) {
  console.log('\nskipped:');
  const reasons = existsSync(skipLog) ? readFileSync(skipLog, 'utf8').trim() : '';
  console.log(reasons || '  (no reason recorded)');
}
if (failures.length > 0) console.log(`\nfailed:\n${failures.join('\n')}`);
console.log('');
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
