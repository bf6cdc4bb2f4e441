import { type ClgwError, isClgwError, serializeError } from '@clgw/core/errors.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';
import type { Written } from '../machine/update.machine.js';
import { downloadRelease } from './download.js';

/**
 * How long the agent waits before it resumes, by itself, a download that a transient failure
 * stopped — the customer's link down, the mirror restarting, a response that stalled (issue #21).
 * About 9 minutes in all; an attempt that makes a durable checkpoint starts the list again, so a
 * link that drops now and then never ends the update. After the last, the update fails as it did
 * before (transient: Retry, the next update window or the next start resumes from the checkpoint).
 */
export const RESUME_DELAYS_MS: readonly number[] = [5_000, 15_000, 30_000, 60_000, 120_000, 300_000];

export interface ResumeOptions {
  delays: readonly number[];
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  /** Told before each wait: the failure, the wait, and which resume this will be (1, 2, …). */
  onWait: (error: ClgwError, ms: number, resume: number) => void;
}

/**
 * Runs `attempt` until it succeeds, resuming after each transient failure once the next of
 * `delays` has passed; `attempt` calls `progressed` at each durable checkpoint, which starts the
 * delays over. A failure that is not transient, one after the last delay, or an abort (also during
 * a wait) is thrown.
 */
export async function resumeAfterFailures(
  attempt: (progressed: () => void) => Promise<void>,
  o: ResumeOptions,
): Promise<void> {
  let next = 0;
  let resumes = 0;
  for (;;) {
    let progressed = false;
    try {
      await attempt(() => {
        progressed = true;
      });
      return;
    } catch (e) {
      if (o.signal.aborted || !isClgwError(e) || !e.transient) throw e;
      if (progressed) next = 0;
      const ms = o.delays[next++];
      if (ms === undefined) throw e;
      o.onWait(e, ms, ++resumes);
      await o.sleep(ms, o.signal);
    }
  }
}

/**
 * Whether the download budget holds a run begun by `trigger`: always, unless agent.json lets the
 * update window's runs go at the link's rate (downloadBudgetInWindow: false).
 */
export function holdToBudget(
  deps: Pick<Deps, 'config' | 'downloadBudget'>,
  trigger: Journal['trigger'],
): void {
  deps.downloadBudget?.holds(trigger !== 'window' || deps.config.downloadBudgetInWindow);
}

/**
 * The download effect: downloadRelease, resumed after transient failures (RESUME_DELAYS_MS) from
 * its last durable checkpoint — the journal's offsets, as a Retry would. While it waits, the
 * progress says so (tty1, the portal and `clgw status` show the phase) and the log names the cause.
 */
export async function downloadResuming(
  deps: Deps,
  journal: Journal,
  signal: AbortSignal,
  checkpoint: (written: Written) => void,
): Promise<void> {
  let current = journal;
  const version = journal.target?.version ?? '';
  holdToBudget(deps, journal.trigger);
  await resumeAfterFailures(
    (progressed) =>
      downloadRelease(deps, current, signal, (written) => {
        // Bytes made durable, not a mark that an artifact was read back (download.ts).
        const before = current.written;
        if (!before || written.boot > before.boot || written.root > before.root) progressed();
        current = { ...current, written };
        checkpoint(written);
      }),
    {
      delays: deps.config.http.resumeDelaysMs ?? RESUME_DELAYS_MS,
      sleep: (ms, s) => deps.clock.sleep(ms, s),
      signal,
      onWait: (error, ms, resume) => {
        deps.log.warn('download interrupted: resuming it by itself', {
          error: serializeError(error),
          waitMs: ms,
          resume,
          written: current.written,
        });
        const p = deps.progress.snapshot();
        deps.progress.start(
          `downloading ${version}: interrupted (${error.code}); resuming after a ${Math.round(ms / 1000)} s wait`,
          p?.total ?? 0,
          p?.bytes ?? 0,
        );
      },
    },
  );
}
