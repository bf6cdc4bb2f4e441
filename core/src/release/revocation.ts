import { constants, verify as cryptoVerify, type X509Certificate } from 'node:crypto';
import * as z from 'zod';
import { ClgwError } from '../errors.js';
import { parseUtcTimestamp } from './schema.js';

/**
 * The revocation list (`clgw-revocations-v1`, README.md "Revocation"): serials of intermediate or
 * signing certificates the vendor no longer trusts, signed directly by a pinned root's key — the
 * offline one, so a leaked signing key cannot unrevoke itself — and carried in compat.yaml.sig.
 *
 * The list travels as its exact bytes (base64) beside the root's signature over them: the
 * signature covers bytes, never a re-serialization. Those bytes must be the canonical JSON of the
 * list (fixed key order, no whitespace, serials ascending), so there is one way to write a given
 * list and two readers cannot disagree about what was signed (duplicate keys, for one, are not
 * canonical). Lists are numbered; an appliance keeps the highest it has seen, so a replayed envelope
 * without a list, or with an older one, never makes it trust a revoked certificate again.
 */

export const REVOCATIONS_FORMAT = 'clgw-revocations-v1';
export const REVOCATIONS_ALGORITHM = 'RSA-PSS-SHA256';
/** Bounds the bytes parsed before anything else is known about them (256 serials take ~11 KiB). */
export const MAX_REVOCATION_LIST_BYTES = 16 * 1024;
/** A vendor revokes a handful of intermediates and signing certificates, never thousands. */
export const MAX_REVOKED_SERIALS = 256;

/** RFC 5280 serials are positive and at most 20 octets: 1 to 40 hex digits, no leading zero. */
const SERIAL = /^[1-9a-f][0-9a-f]{0,39}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const RevocationListSchema = z.strictObject({
  format: z.literal(REVOCATIONS_FORMAT),
  number: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  issued: z.string().refine((s) => !Number.isNaN(parseUtcTimestamp(s)), {
    error: 'expected an ISO-8601 UTC timestamp such as 2026-11-20T10:00:00Z',
  }),
  serials: z
    .array(
      z.string().regex(SERIAL, {
        error: 'expected a certificate serial in lowercase hex without leading zeros (1-40 digits)',
      }),
    )
    .max(MAX_REVOKED_SERIALS, { error: `at most ${MAX_REVOKED_SERIALS} serials` }),
});
export type RevocationList = z.output<typeof RevocationListSchema>;

/**
 * The list as it travels (in compat.yaml.sig's `revocations`, the tree's `revocations.json` and
 * the appliance's stored copy): its exact bytes and the root's signature over them, both base64.
 */
export const SignedRevocationsSchema = z.strictObject({
  list: z
    .string()
    .min(4)
    .max(Math.ceil(MAX_REVOCATION_LIST_BYTES / 3) * 4)
    .regex(BASE64, { error: 'expected standard base64' }),
  signature: z.string().min(4).max(2048).regex(BASE64, { error: 'expected standard base64' }),
});
export type SignedRevocations = z.output<typeof SignedRevocationsSchema>;

/** A list whose signature verified against a pinned root. */
export interface VerifiedRevocations {
  list: RevocationList;
  /** The bytes and signature it came as: what is stored, so it can be verified again on reading. */
  signed: SignedRevocations;
  /** Subject of the pinned root whose key signed it. */
  root: string;
}

/** The canonical bytes of a list: keys in schema order, no whitespace, serials ascending. */
export function encodeRevocationList(list: RevocationList): Buffer {
  const canonical: RevocationList = {
    format: list.format,
    number: list.number,
    issued: list.issued,
    serials: [...new Set(list.serials)].sort(),
  };
  return Buffer.from(JSON.stringify(canonical));
}

/**
 * Parses the bytes of a list strictly: size, UTF-8 JSON, the schema, then the canonical form.
 * Throws `SIGNATURE_INVALID` naming `where` (the list is part of the signature envelope).
 */
export function parseRevocationList(bytes: Uint8Array, where: string): RevocationList {
  const bad = (why: string, cause?: unknown): ClgwError =>
    new ClgwError('SIGNATURE_INVALID', `${where} is malformed: ${why}`, { cause, details: { where } });
  if (bytes.byteLength > MAX_REVOCATION_LIST_BYTES)
    throw bad(`${bytes.byteLength} bytes, more than the ${MAX_REVOCATION_LIST_BYTES} allowed`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad(`not UTF-8 JSON (${(e as Error).message})`, e);
  }
  const result = RevocationListSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const at = issue.path.map(String).join('.') || '(list)';
    const what = issue.code === 'unrecognized_keys' ? `unknown keys ${issue.keys.join(', ')}` : issue.message;
    throw bad(`${at}: ${what}`);
  }
  const list = result.data;
  for (let i = 1; i < list.serials.length; i++) {
    if (list.serials[i - 1]! >= list.serials[i]!)
      throw bad(`serials: not in ascending order without repeats (at serials.${i}, "${list.serials[i]}")`);
  }
  if (!encodeRevocationList(list).equals(bytes))
    throw bad('not in canonical form (compact JSON, keys format, number, issued, serials in that order)');
  return list;
}

/**
 * Verifies a signed list against the pinned roots and parses it: the signature first (RSA-PSS,
 * SHA-256, salt length = digest length, by a pinned root's own key — no chain: only the offline
 * root may revoke), then the bytes. Throws `SIGNATURE_INVALID` naming `where`.
 */
export function verifyRevocations(
  signed: SignedRevocations,
  roots: readonly X509Certificate[],
  where: string,
): VerifiedRevocations {
  const checked = SignedRevocationsSchema.safeParse(signed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new ClgwError(
      'SIGNATURE_INVALID',
      `${where} is malformed: ${issue.path.map(String).join('.') || '(list)'}: ${issue.message}`,
      { details: { where } },
    );
  }
  const bytes = Buffer.from(signed.list, 'base64');
  const signature = Buffer.from(signed.signature, 'base64');
  const { signer, rsaRoots } = rootSignerOf(bytes, signature, roots);
  if (!signer)
    throw new ClgwError(
      'SIGNATURE_INVALID',
      `${where}: its signature does not verify with ${rsaRoots.length === 0 ? 'any pinned root (none has an RSA key)' : `the key of a pinned root (${rsaRoots.map((r) => `"${subjectOf(r)}"`).join(', ')})`}: a revocation list must be signed by the release root itself`,
      { details: { where } },
    );
  return { list: parseRevocationList(bytes, where), signed: { ...signed }, root: subjectOf(signer) };
}

/**
 * The root among `roots` whose own key made `signature` over `bytes` (RSA-PSS, SHA-256, salt length
 * = digest length: what the release root signs lists and rotation statements with), or undefined;
 * with the roots that could have (RSA ones), for messages.
 */
export function rootSignerOf(
  bytes: Uint8Array,
  signature: Uint8Array,
  roots: readonly X509Certificate[],
): { signer: X509Certificate | undefined; rsaRoots: X509Certificate[] } {
  const params = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  // The algorithm is RSA-PSS; a pinned root with another key type cannot have signed.
  const rsaRoots = roots.filter((r) => r.publicKey.asymmetricKeyType === 'rsa');
  const signer = rsaRoots.find((root) => {
    try {
      return cryptoVerify('sha256', bytes, { key: root.publicKey, ...params }, signature);
    } catch {
      return false;
    }
  });
  return { signer, rsaRoots };
}

/**
 * What an appliance holds to after seeing `offered` with `stored` on disk: the higher-numbered
 * list (a lower or equal number is ignored — the stored list never shrinks), and whether that is
 * the offered one, to be persisted before it is used.
 */
export function newerRevocations(
  stored: VerifiedRevocations | undefined,
  offered: VerifiedRevocations | undefined,
): { effective: VerifiedRevocations | undefined; adopt: boolean } {
  if (offered && (!stored || offered.list.number > stored.list.number))
    return { effective: offered, adopt: true };
  return { effective: stored, adopt: false };
}

/** A certificate's serial as the list writes it: lowercase hex, no leading zeros. */
export function serialOf(cert: X509Certificate): string {
  // A zero or over-long serial is on no list; its own digits still name it in messages.
  return normalizeSerial(cert.serialNumber) ?? cert.serialNumber.toLowerCase();
}

/**
 * `7F:3A…`, `0x7f3a…` or `007F3A…` as the list writes it (`7f3a…`), or undefined when it is not a
 * positive serial of at most 20 octets.
 */
export function normalizeSerial(text: string): string | undefined {
  const hex = text.trim().replace(/^0x/i, '').replace(/[:\s]/g, '').toLowerCase().replace(/^0+/, '');
  return SERIAL.test(hex) ? hex : undefined;
}

function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}
