/**
 * The power-cut torture test as a test tier: `POWERCUT_CUTS` cuts (default 100) spread over every
 * scenario, reproducible from `POWERCUT_SEED`. It fails listing every case that did not survive,
 * each with the command that reruns it alone. The full run is `test/powercut/run.ts`.
 */
import { promises as fs } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AGENT_MAIN, RECOVERY_MAIN } from '../../scripts/sim/boot-emulator.js';
import { recordSkip } from '../support/skip.js';
import { failureLine, runPowercut } from './harness.js';

const CUTS = Number(process.env.POWERCUT_CUTS ?? 100);
const SEED = Number(process.env.POWERCUT_SEED ?? 20_260_101);

describe('power cuts', () => {
  it(`the appliance survives ${CUTS} power cuts at its persisted steps and inside long writes (seed ${SEED})`, async () => {
    await fs.access(AGENT_MAIN); // built by `make test`
    await fs.access(RECOVERY_MAIN);
    const summary = await runPowercut({ cuts: CUTS, seed: SEED, jobs: 2, out: () => undefined });
    if (summary.leftOut) {
      recordSkip(
        `test/powercut/powercut.test.ts (${summary.leftOut.scenarios.join(', ')})`,
        summary.leftOut.reason,
      );
    }
    const failing = [...summary.passFailures, ...summary.failed].map(failureLine);
    expect(
      failing,
      `${failing.length} case(s) did not survive; rerun one with npx tsx test/powercut/run.ts --seed ${SEED} --case '<key>':\n${failing.join('\n')}\n`,
    ).toEqual([]);
    expect(summary.cuts).toBeGreaterThanOrEqual(CUTS);
    expect(summary.survived).toBe(summary.cuts);
  }, 3_600_000);
});
