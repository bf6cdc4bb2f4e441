import * as z from 'zod';

/**
 * One error type for the whole agent. Every failure carries a stable `code` (what scripts, the
 * console and the portal switch on), a `transient` flag (worth retrying without changing anything)
 * and a message that names the host, port, file or value at fault.
 */
export const ERROR_CODES = [
  // network (fetching compat.yaml and artifacts)
  'DNS_LOOKUP_FAILED',
  'CONNECTION_REFUSED',
  'CONNECTION_RESET',
  'HOST_UNREACHABLE',
  'TIMED_OUT',
  'TLS_ERROR',
  'HTTP_STATUS',
  'REDIRECT_REFUSED',
  'SIZE_EXCEEDED',
  'ARTIFACT_TRUNCATED',
  'RANGE_NOT_SUPPORTED',
  'PROXY_INVALID',
  'PROXY_AUTH_FAILED',
  'NETWORK_ERROR',
  'NETWORK_APPLY_FAILED',
  'SSH_FAILED',
  // release (compat.yaml, signature, version rules)
  'YAML_INVALID',
  'COMPAT_INVALID',
  'SIGNATURE_MISSING',
  'SIGNATURE_INVALID',
  'CHAIN_INVALID',
  'RELEASE_EXPIRED',
  'SERIAL_REPLAYED',
  'PLATFORM_MISMATCH',
  'DOWNGRADE_REFUSED',
  'SOURCE_VERSION_TOO_OLD',
  // slots and boot environment
  'HASH_MISMATCH',
  'IMAGE_MISMATCH',
  'READBACK_MISMATCH',
  'INDEX_INVALID',
  'CHUNK_MISMATCH',
  'NO_SPACE',
  'SLOT_WRITE_FAILED',
  'SLOT_ACTIVE',
  'SLOT_UNKNOWN',
  'GRUBENV_INVALID',
  'BOOTED_SLOT_UNKNOWN',
  // update flow
  'HEALTH_CHECK_FAILED',
  'CRITICAL_PHASE_FAILED',
  'BUSY',
  'INVALID_REQUEST',
  'NOT_ALLOWED',
  // proof of presence (the code on the appliance's own screen, asked by the portal)
  'PRESENCE_CODE_INVALID',
  'PRESENCE_LOCKED',
  'STATE_INVALID',
  'CONFIG_INVALID',
  'SETTING_INVALID',
  'AGENT_UNREACHABLE',
  'INTERNAL',
  'LOG_ARCHIVE_FAILED',
  // container engine (Podman's Docker-compatible API)
  'ENGINE_UNAVAILABLE',
  'ENGINE_ERROR',
  'IMAGE_INVALID',
  // recovery system (factory reset)
  'RECOVERY_MANIFEST_INVALID',
  'RECOVERY_IMAGE_INVALID',
  // first boot (the OVF environment and the CD-ROM that may carry it)
  'OVF_ENV_INVALID',
  'ISO_INVALID',
  // image builder (vendor side: root filesystem, disk images, OVA)
  'IMAGE_BUILD_FAILED',
] as const;

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
