import * as z from 'zod';

/**
 * One error type for the whole agent. Every failure carries a stable `code` (what scripts, the
 * console and the portal switch on), a `transient` flag (worth retrying without changing anything)
 * and a message that names the host, port, file or value at fault.
 */
import { ERROR_CODES } from './error-codes.js';

export { ERROR_CODES, REACH_ERROR_CODES } from './error-codes.js';

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ClgwErrorOptions {
  /** Worth retrying as is (network blips); false for everything that needs a change first. */
  transient?: boolean;
  cause?: unknown;
  /** Machine-readable facts (host, port, file, expected/actual…) for logs and the status API. */
  details?: Record<string, unknown>;
}

export class ClgwError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ClgwErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClgwError';
    this.code = code;
    this.transient = options.transient ?? false;
    this.details = options.details ?? {};
  }

  toJSON(): SerializedError {
    return { code: this.code, message: this.message, transient: this.transient, details: this.details };
  }
}

/** The form an error takes in the persisted journal and on the API. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  transient: boolean;
  details?: Record<string, unknown>;
}

/** The schema of a persisted {@link SerializedError} (journal, container state). */
export const serializedErrorSchema = z
  .object({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    transient: z.boolean(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export function isClgwError(e: unknown): e is ClgwError {
  return e instanceof ClgwError;
}

/** Any thrown value as a ClgwError; foreign errors become INTERNAL with the original as cause. */
export function toClgwError(e: unknown): ClgwError {
  if (e instanceof ClgwError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new ClgwError('INTERNAL', message, { cause: e });
}

export function serializeError(e: unknown): SerializedError {
  return toClgwError(e).toJSON();
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
