/**
 * The power-cut torture run (README.md in this directory).
 *
 *   npx tsx test/powercut/run.ts --cuts N [--seed S] [--scenario NAME]... [--jobs J] [--case KEY]...
 *   npx tsx test/powercut/run.ts --list-points [--scenario NAME]...   (the crash points each scenario passes)
 *
 * Prints one line per failing case (`FAIL <case key> seed=<S> cut=… :: invariant …`), a summary
 * per scenario, and last `powercut: cuts=<N> survived=<M>`. Exit 0 when every case held, 1 when
 * one did not, 2 on a usage error. Details of failing cases: `.cache/powercut/failures.json`.
 * A failing case reruns alone with `--seed S --case KEY`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from '../support/appliance.js';
import { runPowercut } from './harness.js';
import { SCENARIO_NAMES, type ScenarioName } from './scenarios.js';

const USAGE =
  'usage: npx tsx test/powercut/run.ts --cuts N [--seed S] [--scenario NAME]... [--jobs J] [--case KEY]...\n' +
  '       npx tsx test/powercut/run.ts --list-points [--scenario NAME]...\n' +
  `  scenarios: ${SCENARIO_NAMES.join(', ')}\n`;

function usage(message: string): never {
  process.stderr.write(`run.ts: ${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: typeof options }>>;
  const options = {
    cuts: { type: 'string' },
    seed: { type: 'string' },
    scenario: { type: 'string', multiple: true },
    jobs: { type: 'string' },
    case: { type: 'string', multiple: true },
    quiet: { type: 'boolean' },
    'list-points': { type: 'boolean' },
  } as const;
  try {
    args = parseArgs({ options, strict: true });
  } catch (e) {
    usage((e as Error).message);
  }
  const { values } = args;
  const only = values.case;
  const listPoints = values['list-points'] ?? false;
  const cuts =
    values.cuts === undefined ? (only ? only.length : listPoints ? 1 : undefined) : Number(values.cuts);
  if (cuts === undefined || !Number.isInteger(cuts) || cuts < 1) usage('--cuts must be a positive integer');
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) usage('--seed must be a non-negative integer');
  const jobs = values.jobs === undefined ? 2 : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) usage('--jobs must be a positive integer');
  const scenarios = values.scenario as ScenarioName[] | undefined;
  for (const s of scenarios ?? []) if (!SCENARIO_NAMES.includes(s)) usage(`unknown scenario ${s}`);

  const progress = values.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
  progress(`powercut: seed=${seed} cuts=${cuts} jobs=${jobs}`);
  const summary = await runPowercut({ cuts, seed, scenarios, only, jobs, progress, listPoints });

  const failures = [...summary.passFailures, ...summary.failed];
  const file = path.join(REPO, '.cache/powercut/failures.json');
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `${JSON.stringify({ seed, failures }, null, 2)}\n`);
  if (failures.length > 0) process.stdout.write(`powercut: details of the failing cases in ${file}\n`);
  process.stdout.write(`powercut: cuts=${summary.cuts} survived=${summary.survived}\n`);
  return failures.length > 0 || summary.survived < summary.cuts ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`run.ts: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
