/**
 * The factory manifest (`manifest.json` on the recovery partition): which factory images the
 * partition holds, with the size and SHA-256 each must have. Written once at the factory (and by
 * the simulator's `createAppliance`); the recovery system trusts nothing it cannot check against
 * it, and refuses an image that disagrees before a single byte of a slot is written.
 *
 * Pure: no `node:*` imports.
 */
import { ClgwError } from '@clgw/core/errors.js';
import * as z from 'zod';

/** File name of the manifest inside the recovery partition. */
export const MANIFEST_FILE = 'manifest.json';
/** The manifest is a few hundred bytes; anything far larger is not one. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

/** The two factory images, in the order they are written. */
export const IMAGE_KINDS = ['boot', 'root'] as const;
export type ImageKind = (typeof IMAGE_KINDS)[number];

/**
 * Names the recovery system keeps beside the images on the same partition: an image must not be
 * one of them, or the recovery log or the alarm stash would be taken for (or overwrite) it.
 */
export const RESERVED_NAMES: readonly string[] = [MANIFEST_FILE, 'recovery.log', 'recovery.log.1', 'carry'];

/**
 * A plain file name inside the recovery partition: no directory part (so no `..` or `/` can send
 * the reader elsewhere), no leading dot (no hidden or temp files), printable ASCII only.
 */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$/;

const imageSchema = z.strictObject({
  file: z
    .string()
    .regex(FILE_NAME, 'must be a plain file name (letters, digits, ".", "_", "-"; no directory part)')
    .refine((f) => !RESERVED_NAMES.includes(f), 'is a name the recovery system uses for itself'),
  size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  sha256: z.string().regex(SHA256_HEX, 'must be 64 lowercase hex digits'),
});

const manifestSchema = z
  .strictObject({
    schema: z.literal(1),
    version: z.string().regex(VERSION, 'must be a release version such as 1.0.0'),
    boot: imageSchema,
    root: imageSchema,
  })
  .refine((m) => m.boot.file !== m.root.file, {
    message: 'boot and root must be different files',
    path: ['root', 'file'],
  });

/** One factory image as the manifest describes it. */
export type FactoryImage = z.infer<typeof imageSchema>;
/** The validated content of `manifest.json`. */
export type FactoryManifest = z.infer<typeof manifestSchema>;

/**
 * Validates a manifest value (already parsed JSON). Strict: unknown keys, a missing field, a bad
 * digest or a file name with a directory part are all RECOVERY_MANIFEST_INVALID naming `source`
 * and the field at fault.
 */
export function validateManifest(value: unknown, source = MANIFEST_FILE): FactoryManifest {
  const result = manifestSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new ClgwError(
      'RECOVERY_MANIFEST_INVALID',
      `factory manifest ${source} is invalid: ${problems.join('; ')}`,
      {
        details: { file: source, problems },
      },
    );
  }
  return result.data;
}

/** Parses and validates the manifest's text; RECOVERY_MANIFEST_INVALID naming `source` when it is not JSON. */
export function parseManifest(text: string, source = MANIFEST_FILE): FactoryManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ClgwError(
      'RECOVERY_MANIFEST_INVALID',
      `factory manifest ${source} is not valid JSON: ${(e as Error).message}`,
      { cause: e, details: { file: source } },
    );
  }
  return validateManifest(value, source);
}
