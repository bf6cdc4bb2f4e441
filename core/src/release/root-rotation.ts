import { createHash, X509Certificate } from 'node:crypto';
import * as z from 'zod';
import { ClgwError } from '../errors.js';
import { keyProblem } from './key-strength.js';
import { rootSignerOf } from './revocation.js';
import { parseUtcTimestamp } from './schema.js';
import { readX509Fields } from './x509-fields.js';

/**
 * Root rotation (`clgw-root-rotation-v1`, README.md "Root rotation"): a new release root, vouched
 * for by the root the image pins, carried in compat.yaml.sig as `rootRotation`.
 *
 * What the old root signs is a small statement, not a cross-certificate: the canonical JSON
 * `{"format":"clgw-root-rotation-v1","newRoot":"<sha256 of the new root's DER>","overlapUntil":"…Z"}`,
 * signed RSA-PSS/SHA-256 by the old root's own key exactly as a revocation list is. The digest binds
 * the whole new certificate (key, subject, extensions, validity), and `overlapUntil` — until when
 * chains to the old root are still accepted — sits under the same signature, so nobody without the
 * old root's key can extend or shorten it. A cross-certificate could bind the key and subject but
 * not the overlap (short of overloading its notAfter), and would need a second chain walker.
 *
 * The statement travels as its exact bytes (base64) beside the signature and the new root's PEM;
 * the bytes must be canonical (fixed key order, no whitespace), so there is one way to write it.
 */

export const ROOT_ROTATION_FORMAT = 'clgw-root-rotation-v1';
/** A statement is ~150 bytes; this bounds what is parsed before anything is known about it. */
export const MAX_ROTATION_STATEMENT_BYTES = 1024;
const MAX_PEM_CHARS = 16 * 1024;

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const RotationStatementSchema = z.strictObject({
  format: z.literal(ROOT_ROTATION_FORMAT),
  newRoot: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a SHA-256 digest in lowercase hex' }),
  overlapUntil: z.string().refine((s) => !Number.isNaN(parseUtcTimestamp(s)), {
    error: 'expected an ISO-8601 UTC timestamp such as 2026-11-20T10:00:00Z',
  }),
});
export type RotationStatement = z.output<typeof RotationStatementSchema>;

/** The rotation as it travels (envelope `rootRotation`, the tree's and the appliance's file). */
export const SignedRotationSchema = z.strictObject({
  /** The new root: self-signed CA certificate, PEM. */
  cert: z.string().max(MAX_PEM_CHARS).regex(PEM_CERT, { error: 'expected exactly one PEM certificate' }),
  /** The statement's exact bytes, base64. */
  statement: z
    .string()
    .min(4)
    .max(Math.ceil(MAX_ROTATION_STATEMENT_BYTES / 3) * 4)
    .regex(BASE64, { error: 'expected standard base64' }),
  /** The old root's signature over those bytes, base64. */
  signature: z.string().min(4).max(2048).regex(BASE64, { error: 'expected standard base64' }),
});
export type SignedRotation = z.output<typeof SignedRotationSchema>;

/** A rotation whose statement verified against a pinned root. */
export interface VerifiedRotation {
  statement: RotationStatement;
  /** What it came as: what is stored, so it is verified again at every reading. */
  signed: SignedRotation;
  newRoot: X509Certificate;
  /** The pinned root whose key signed the statement: the one retired after the overlap. */
  oldRoot: X509Certificate;
  /** `statement.overlapUntil` in milliseconds since the epoch. */
  overlapUntil: number;
}

/** The canonical bytes of a statement: keys in schema order, no whitespace. */
export function encodeRotationStatement(statement: RotationStatement): Buffer {
  const canonical: RotationStatement = {
    format: statement.format,
    newRoot: statement.newRoot,
    overlapUntil: statement.overlapUntil,
  };
  return Buffer.from(JSON.stringify(canonical));
}

/** SHA-256 of a certificate's DER, lowercase hex: how a statement names the new root. */
export function certDigest(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex');
}

/**
 * Whether the rotation's new root is already one of `roots` (an image that pins it): then there is
 * nothing to adopt, and the rotation is not judged — its signer may no longer be pinned at all.
 */
export function rotationIsMoot(signed: SignedRotation, roots: readonly X509Certificate[]): boolean {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(signed.cert);
  } catch {
    return false;
  }
  return roots.some((r) => r.fingerprint256 === cert.fingerprint256);
}

/**
 * Verifies a rotation against the pinned roots: the statement's signature by a pinned root's own
 * key (no chain — only an offline root may name its successor), the canonical statement, then the
 * new root: the certificate the statement's digest names, self-signed, a CA (basicConstraints
 * CA:TRUE, keyUsage with keyCertSign), a strong key, not a pinned root itself, and valid at `now`
 * (an expired new root would leave, after the overlap, nothing to trust). Throws
 * `SIGNATURE_INVALID` naming `where`.
 */
export function verifyRootRotation(
  signed: SignedRotation,
  roots: readonly X509Certificate[],
  now: number,
  where: string,
): VerifiedRotation {
  const bad = (why: string, cause?: unknown): ClgwError =>
    new ClgwError('SIGNATURE_INVALID', `${where} ${why}`, { cause, details: { where } });
  const checked = SignedRotationSchema.safeParse(signed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    const what = issue.code === 'unrecognized_keys' ? `unknown keys ${issue.keys.join(', ')}` : issue.message;
    throw bad(`is malformed: ${issue.path.map(String).join('.') || '(rotation)'}: ${what}`);
  }
  const bytes = Buffer.from(signed.statement, 'base64');
  const { signer, rsaRoots } = rootSignerOf(bytes, Buffer.from(signed.signature, 'base64'), roots);
  if (!signer)
    throw bad(
      `does not verify: its statement is not signed by ${rsaRoots.length === 0 ? 'any pinned root (none has an RSA key)' : `the key of a pinned root (${rsaRoots.map((r) => `"${subjectOf(r)}"`).join(', ')})`}; a new root must be vouched for by the current root itself`,
    );
  const statement = parseRotationStatement(bytes, where);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(signed.cert);
  } catch (e) {
    throw bad('is malformed: cert is not a readable certificate', e);
  }
  const newRoot = `new root "${subjectOf(cert)}"`;
  if (certDigest(cert) !== statement.newRoot)
    throw bad(
      `does not verify: ${newRoot} has SHA-256 ${certDigest(cert)}, but the statement names ${statement.newRoot}`,
    );
  if (roots.some((r) => r.fingerprint256 === cert.fingerprint256))
    throw bad(`names ${newRoot}, which is already pinned`);
  if (!cert.checkIssued(cert) || !cert.verify(cert.publicKey))
    throw bad(`does not verify: ${newRoot} is not self-signed`);
  let fields: ReturnType<typeof readX509Fields>;
  try {
    fields = readX509Fields(cert.raw);
  } catch (e) {
    throw bad(`does not verify: ${newRoot} cannot be read: ${(e as Error).message}`, e);
  }
  if (!fields.basicConstraints?.ca)
    throw bad(`does not verify: ${newRoot} is not a CA certificate (no basicConstraints CA:TRUE)`);
  if (!fields.keyUsage?.keyCertSign)
    throw bad(`does not verify: ${newRoot} has no keyUsage with keyCertSign`);
  const weak = keyProblem(cert);
  if (weak) throw bad(`does not verify: ${newRoot} ${weak}`);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (!(now >= from && now <= to))
    throw bad(`does not verify: ${newRoot} is not valid now (${cert.validFrom} to ${cert.validTo})`);
  return {
    statement,
    signed: { cert: signed.cert, statement: signed.statement, signature: signed.signature },
    newRoot: cert,
    oldRoot: signer,
    overlapUntil: parseUtcTimestamp(statement.overlapUntil),
  };
}

/** Parses a statement's bytes strictly (size, UTF-8 JSON, schema, canonical form). */
export function parseRotationStatement(bytes: Uint8Array, where: string): RotationStatement {
  const bad = (why: string, cause?: unknown): ClgwError =>
    new ClgwError('SIGNATURE_INVALID', `${where} is malformed: ${why}`, { cause, details: { where } });
  if (bytes.byteLength > MAX_ROTATION_STATEMENT_BYTES)
    throw bad(
      `statement of ${bytes.byteLength} bytes, more than the ${MAX_ROTATION_STATEMENT_BYTES} allowed`,
    );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad(`statement is not UTF-8 JSON (${(e as Error).message})`, e);
  }
  const result = RotationStatementSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const what = issue.code === 'unrecognized_keys' ? `unknown keys ${issue.keys.join(', ')}` : issue.message;
    throw bad(`statement ${issue.path.map(String).join('.') || '(statement)'}: ${what}`);
  }
  if (!encodeRotationStatement(result.data).equals(bytes))
    throw bad('statement is not in canonical form (compact JSON, keys format, newRoot, overlapUntil)');
  return result.data;
}

/** The roots that apply at one instant, given the image's roots and an adopted rotation. */
export interface TrustAt {
  /** What compat.yaml's chain may end at. */
  chainRoots: X509Certificate[];
  /** Roots no longer accepted for chains: the rotated-from root once its overlap has ended. */
  retired: { root: X509Certificate; until: string; successor: X509Certificate }[];
  /**
   * What a revocation list may be signed by: every root trusted now or through the rotation — a
   * list only removes trust, so an old root's list grants nothing, and one stored before the
   * overlap ended must keep verifying (or every update would be refused).
   */
  listRoots: X509Certificate[];
}

/**
 * The image's roots plus the rotation's new root; after `overlapUntil` (strictly later) the root
 * that signed the rotation is dropped from the chain roots. Without a rotation, the image's roots.
 */
export function trustAt(
  imageRoots: readonly X509Certificate[],
  rotation: VerifiedRotation | undefined,
  now: number,
): TrustAt {
  if (!rotation) return { chainRoots: [...imageRoots], retired: [], listRoots: [...imageRoots] };
  const all = [...imageRoots, rotation.newRoot];
  if (now <= rotation.overlapUntil) return { chainRoots: all, retired: [], listRoots: all };
  const old = rotation.oldRoot.fingerprint256;
  return {
    chainRoots: all.filter((r) => r.fingerprint256 !== old),
    retired: [
      { root: rotation.oldRoot, until: rotation.statement.overlapUntil, successor: rotation.newRoot },
    ],
    listRoots: all,
  };
}

/** Certificates as one PEM string (what the agent's PEM-taking readers are given). */
export function rootsPem(roots: readonly X509Certificate[]): string {
  return roots.map((r) => r.toString().trim()).join('\n') + '\n';
}

function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}
