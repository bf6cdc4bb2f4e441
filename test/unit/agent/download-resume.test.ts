import { ClgwError } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import { resumeAfterFailures } from '../../../agent/src/actors/download-resume.js';

const lost = () => new ClgwError('TIMED_OUT', 'no data for 30 s', { transient: true });

/** Runs resumeAfterFailures over scripted attempts; records the waits it made. */
async function run(
  attempts: ((progressed: () => void) => Promise<void>)[],
  delays = [10, 20, 30],
  signal = new AbortController().signal,
) {
  const waits: number[] = [];
  let i = 0;
  const outcome = await resumeAfterFailures(
    (progressed) => {
      const next = attempts[i++];
      if (!next) throw new Error('more attempts than scripted');
      return next(progressed);
    },
    {
      delays,
      signal,
      sleep: async (ms) => {
        waits.push(ms);
      },
      onWait: () => undefined,
    },
  ).then(
    () => 'done',
    (e: ClgwError) => e.code,
  );
  return { outcome, waits, attempts: i };
}

describe('resumeAfterFailures', () => {
  it('waits the next delay after each transient failure, and stops when an attempt succeeds', async () => {
    const r = await run([
      async () => {
        throw lost();
      },
      async () => {
        throw lost();
      },
      async () => undefined,
    ]);
    expect(r).toEqual({ outcome: 'done', waits: [10, 20], attempts: 3 });
  });

  it('starts the delays over after an attempt that made a durable checkpoint', async () => {
    const progressThenLost = async (progressed: () => void) => {
      progressed();
      throw lost();
    };
    const r = await run([
      async () => {
        throw lost();
      },
      progressThenLost,
      async () => {
        throw lost();
      },
      async () => {
        throw lost();
      },
      async () => {
        throw lost();
      },
    ]);
    expect(r).toEqual({ outcome: 'TIMED_OUT', waits: [10, 10, 20, 30], attempts: 5 });
  });

  it('throws a failure that is not transient at once', async () => {
    const r = await run([
      async () => {
        throw new ClgwError('HASH_MISMATCH', 'SHA-256 differs');
      },
    ]);
    expect(r).toEqual({ outcome: 'HASH_MISMATCH', waits: [], attempts: 1 });
  });

  it('never resumes with no delays, nor once aborted', async () => {
    expect(await run([async () => Promise.reject(lost())], [])).toEqual({
      outcome: 'TIMED_OUT',
      waits: [],
      attempts: 1,
    });
    const abort = new AbortController();
    abort.abort();
    expect(await run([async () => Promise.reject(lost())], [10], abort.signal)).toEqual({
      outcome: 'TIMED_OUT',
      waits: [],
      attempts: 1,
    });
  });
});
