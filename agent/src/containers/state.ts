import { type SerializedError, serializedErrorSchema } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { CONTAINER_NAMES, type ContainerName } from '@clgw/core/release/schema.js';
import * as z from 'zod';
import { type CallWait, callWaitSchema } from '../machine/journal.js';
import type { Intent, PlanAction, Step } from './plan.js';

/**
 * The container upgrade's persisted state on the data partition (`var/clgw/containers.json`):
 * the run under way — what each service is heading for, and the step about to run, written
 * before it runs — and what the last upgrade of each service did. After a cut the next start
 * plans again from what the engine shows; this file adds what the engine cannot show: that a
 * service was being rolled back, when its old container stopped (downtime), and which versions
 * failed here before.
 */
export interface ServiceRun {
  intent: Intent;
  action: PlanAction;
  /** The version running before (undefined: a first install). */
  from?: string;
  to?: string;
  /** When the old container was stopped (downtime runs from here to the new one's health). */
  stoppedAt?: string;
  /** When the new container answered healthy. */
  healthyAt?: string;
  /** Why the new container was rolled back. */
  reason?: SerializedError;
}

export interface ServiceResult {
  outcome: 'upgraded' | 'installed' | 'rolledBack' | 'removed';
  /** The version running after it. */
  version?: string;
  from?: string;
  /** The version a rolled-back upgrade tried. */
  attempted?: string;
  at: string;
  /** Old container stopped → new one healthy. */
  downtimeMs?: number;
  error?: SerializedError;
}

export interface ContainersState {
  schema: 1;
  run?: {
    startedAt: string;
    trigger: 'boot' | 'window' | 'user';
    force: boolean;
    services: Partial<Record<ContainerName, ServiceRun>>;
    /** The step about to run (persisted before it runs); after a failed run, the step it failed at. */
    step?: Step;
    /** A wait for calls to end before a `freeswitch` or `tunnel` container is stopped. */
    calls?: CallWait;
  };
  last: Partial<Record<ContainerName, ServiceResult>>;
  /** Versions whose upgrade failed here; not tried again automatically. */
  rejected: Partial<Record<ContainerName, { version: string; at: string; message: string }[]>>;
  /** How the last run ended. */
  lastRun?: { at: string; outcome: 'done' | 'failed'; error?: SerializedError };
}

const errorSchema = serializedErrorSchema;
const serviceKey = z.enum(CONTAINER_NAMES);

const stateSchema = z
  .object({
    schema: z.literal(1),
    run: z
      .object({
        startedAt: z.string(),
        trigger: z.enum(['boot', 'window', 'user']),
        force: z.boolean(),
        services: z.partialRecord(
          serviceKey,
          z
            .object({
              intent: z.enum(['upgrade', 'rollback']),
              action: z.enum(['none', 'start', 'install', 'upgrade', 'resume', 'rollback', 'remove', 'held']),
              from: z.string().optional(),
              to: z.string().optional(),
              stoppedAt: z.string().optional(),
              healthyAt: z.string().optional(),
              reason: errorSchema.optional(),
            })
            .strict(),
        ),
        // Steps are our own writing; their shape is checked by the planner's types when written.
        step: z.record(z.string(), z.unknown()).optional(),
        calls: callWaitSchema.optional(),
      })
      .strict()
      .optional(),
    last: z.partialRecord(
      serviceKey,
      z
        .object({
          outcome: z.enum(['upgraded', 'installed', 'rolledBack', 'removed']),
          version: z.string().optional(),
          from: z.string().optional(),
          attempted: z.string().optional(),
          at: z.string(),
          downtimeMs: z.number().nonnegative().optional(),
          error: errorSchema.optional(),
        })
        .strict(),
    ),
    rejected: z.partialRecord(
      serviceKey,
      z.array(z.object({ version: z.string(), at: z.string(), message: z.string() }).strict()),
    ),
    lastRun: z
      .object({ at: z.string(), outcome: z.enum(['done', 'failed']), error: errorSchema.optional() })
      .strict()
      .optional(),
  })
  .strict();

export function emptyContainersState(): ContainersState {
  return { schema: 1, last: {}, rejected: {} };
}

/**
 * Reads the state; a missing file is an empty state. An unreadable one is reported by the caller
 * and replaced: the engine still shows what runs, so nothing is lost but the history.
 */
export async function readContainersState(file: string): Promise<ContainersState> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return emptyContainersState();
  return stateSchema.parse(raw) as ContainersState;
}

export async function writeContainersState(file: string, state: ContainersState): Promise<void> {
  await writeJsonAtomic(file, JSON.parse(JSON.stringify(state)));
}
