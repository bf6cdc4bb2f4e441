import { randomBytes } from 'node:crypto';
import { serializeError } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import type { Logger } from '@clgw/core/platform/log.js';
import * as z from 'zod';
import { formatLocal, nextWindow, spreadOffset, validateWindow, type WindowSetting } from './window.js';

/** `var/clgw/schedule.json`: the window (absent: off), this appliance's spread seed, the last run. */
export interface ScheduleState {
  window?: WindowSetting;
  /** Random per appliance: where in the spread it starts (fixed across restarts). */
  seed: string;
  /** The window's local date it last ran on (a window runs at most once per date). */
  lastRunDate?: string;
}

const stateSchema = z
  .object({
    window: z.object({ at: z.string(), tz: z.string(), spreadMinutes: z.number() }).strict().optional(),
    seed: z.string().min(8),
    lastRunDate: z.string().optional(),
  })
  .strict();

/** A window that started longer ago than this (the clock jumped past it) is skipped, not run late. */
export const MISSED_AFTER_MS = 60 * 60_000;
/** The scheduler looks at the clock at least this often, so a clock jump is noticed soon. */
const TICK_MS = 60_000;

export async function readSchedule(file: string): Promise<ScheduleState> {
  const raw = await readJsonFile(file).catch(() => undefined);
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) return { seed: randomBytes(8).toString('hex') };
  const state = parsed.data as ScheduleState;
  if (state.window) {
    try {
      state.window = validateWindow(state.window);
    } catch {
      state.window = undefined; // a zone the runtime no longer knows: off, rather than a wrong time
    }
  }
  return state;
}

export interface ScheduleView {
  window: WindowSetting | null;
  /** When the next window starts for this appliance (spread included), ISO UTC and local. */
  next: { at: string; local: string } | null;
  lastRunDate: string | null;
}

/** The next start (spread included) for a state, or undefined when off. */
export function nextStart(state: ScheduleState, now: number): { at: number; date: string } | undefined {
  if (!state.window) return undefined;
  const w = nextWindow(state.window, now, state.lastRunDate);
  return { at: w.at + spreadOffset(state.seed, w.date, state.window.spreadMinutes), date: w.date };
}

export function describeSchedule(state: ScheduleState, now: number): ScheduleView {
  const next = nextStart(state, now);
  return {
    window: state.window ?? null,
    next:
      next && state.window
        ? {
            at: new Date(next.at).toISOString(),
            local: formatLocal(state.window.tz, next.at),
          }
        : null,
    lastRunDate: state.lastRunDate ?? null,
  };
}

export interface SchedulerDeps {
  file: string;
  clock: Clock;
  log: Logger;
  /** Runs the window's update (gateway OS, then containers). */
  run(): Promise<void>;
}

/**
 * Runs the update at each window. It re-reads the setting and recomputes the next start on every
 * tick, so a changed setting or a clock that jumps (NTP at boot) takes effect within a minute; a
 * window the clock jumped far past is skipped; the date is recorded before the run so it never
 * runs twice for one date.
 */
export function startScheduler(deps: SchedulerDeps): { stop(): void } {
  const abort = new AbortController();
  const loop = async () => {
    while (!abort.signal.aborted) {
      const state = await readSchedule(deps.file);
      const now = deps.clock.now();
      const next = nextStart(state, now);
      if (!next) {
        await deps.clock.sleep(TICK_MS, abort.signal);
        continue;
      }
      await deps.clock.sleep(Math.max(0, Math.min(next.at - now, TICK_MS)), abort.signal);
      const woke = deps.clock.now();
      if (woke < next.at) continue;
      const fresh = await readSchedule(deps.file);
      if (JSON.stringify(fresh.window) !== JSON.stringify(state.window)) continue; // changed meanwhile
      await writeJsonAtomic(deps.file, { ...fresh, lastRunDate: next.date });
      if (woke - next.at > MISSED_AFTER_MS) {
        deps.log.warn('update window missed (the clock jumped past it); waiting for the next', {
          window: new Date(next.at).toISOString(),
          now: new Date(woke).toISOString(),
        });
        continue;
      }
      deps.log.info('update window: checking for updates', { date: next.date, tz: state.window?.tz });
      await deps.run().catch((e) => deps.log.warn('update window run failed', { error: serializeError(e) }));
    }
  };
  loop().catch((e) => {
    if (!abort.signal.aborted)
      deps.log.error('update window scheduler stopped', { error: serializeError(e) });
  });
  return { stop: () => abort.abort() };
}

/** Turns the window on (validated) or off; keeps the seed and the last run. */
export async function setSchedule(
  file: string,
  input: { off: true } | { at?: unknown; tz?: unknown; spreadMinutes?: unknown },
): Promise<ScheduleState> {
  const state = await readSchedule(file);
  const next: ScheduleState =
    'off' in input ? { ...state, window: undefined } : { ...state, window: validateWindow(input) };
  await writeJsonAtomic(file, next);
  return next;
}
