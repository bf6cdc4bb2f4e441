/**
 * Every stable error code (errors.ts), in a module of its own with no imports, so the pure views
 * (check-words.ts, the portal's bundle) can name codes without loading zod.
 */
/**
 * The failures of reaching the download server (as opposed to refusing what it sent): a check
 * that ends in one of these is a warning, never an update error (check-words.ts).
 */
export const REACH_ERROR_CODES = [
  'DNS_LOOKUP_FAILED',
  'CONNECTION_REFUSED',
  'CONNECTION_RESET',
  'HOST_UNREACHABLE',
  'TIMED_OUT',
  'TLS_ERROR',
  'HTTP_STATUS',
  'REDIRECT_REFUSED',
  'PROXY_INVALID',
  'PROXY_AUTH_FAILED',
  'NETWORK_ERROR',
] as const;

export const ERROR_CODES = [
  // network (fetching compat.yaml and artifacts)
  ...REACH_ERROR_CODES,
  'SIZE_EXCEEDED',
  'ARTIFACT_TRUNCATED',
  'RANGE_NOT_SUPPORTED',
  'NETWORK_APPLY_FAILED',
  'SSH_FAILED',
  // release (compat.yaml, signature, version rules)
  'YAML_INVALID',
  'COMPAT_INVALID',
  'SIGNATURE_MISSING',
  'SIGNATURE_INVALID',
  'CHAIN_INVALID',
  'CERT_REVOKED',
  'RELEASE_EXPIRED',
  'RELEASE_NOT_YET_VALID',
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
  'CHECK_INTERRUPTED',
  'CLOCK_NOT_SET',
  'BUSY',
  'INVALID_REQUEST',
  'NOT_ALLOWED',
  // a "Reboot now" confirmed for another number of calls than are up
  'CALLS_CHANGED',
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
  // the voice service (FreeSWITCH's event socket: how many calls are up)
  'VOICE_UNREACHABLE',
  'VOICE_AUTH_FAILED',
  'VOICE_PROTOCOL',
  // image builder (vendor side: root filesystem, disk images, OVA)
  'IMAGE_BUILD_FAILED',
] as const;
