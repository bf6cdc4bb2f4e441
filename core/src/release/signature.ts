import { constants, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import * as z from 'zod';
import { ClgwError } from '../errors.js';
import { keyProblem } from './key-strength.js';
import {
  newerRevocations,
  type RevocationList,
  SignedRevocationsSchema,
  serialOf,
  type VerifiedRevocations,
  verifyRevocations,
} from './revocation.js';
import {
  rotationIsMoot,
  SignedRotationSchema,
  trustAt,
  type VerifiedRotation,
  verifyRootRotation,
} from './root-rotation.js';
import { readX509Fields, type SignatureAlgorithm, type X509Fields } from './x509-fields.js';

/**
 * Detached signatures for compat.yaml (`compat.yaml.sig`), checked with Node's crypto (OpenSSL).
 *
 * The envelope is JSON (format in README.md): an RSA-PSS/SHA-256 signature over the exact bytes
 * of compat.yaml, plus the signing certificate and its intermediates. The chain is walked here,
 * certificate by certificate, and must end at a certificate *issued by* one of the pinned roots —
 * the appliance's own copy, compared by key and signature. Nothing inside the envelope can become
 * a trust anchor: a self-signed "root" with the pinned root's name but another key fails the
 * signature check against the pinned key like any other forgery. Weak links are refused too: keys
 * under 2048-bit RSA or P-256, SHA-1/MD5 signatures, issuers without CA:TRUE or keyCertSign, and
 * chains longer than an issuer's path length allows (README.md lists the rules). A certificate whose
 * serial is on the revocation list (revocation.ts: the envelope's, or the appliance's stored one if
 * higher) is refused before anything else about the chain is judged.
 */

export const SIGNATURE_FORMAT = 'clgw-sig-v1';
export const SIGNATURE_ALGORITHM = 'RSA-PSS-SHA256';
/** A chain of four certificates is ~8 KiB of PEM; 64 KiB leaves room and bounds JSON parsing. */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
/** Signing certificate plus at most three intermediates below the pinned root. */
export const MAX_CHAIN_LENGTH = 4;
export const CODE_SIGNING_EKU = '1.3.6.1.5.5.7.3.3';
const STRONG_HASHES = ['SHA-256', 'SHA-384', 'SHA-512', 'intrinsic'];
const MAX_PEM_CHARS = 16 * 1024;

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;
const PEM_BLOCKS = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const EnvelopeSchema = z.strictObject({
  format: z.literal(SIGNATURE_FORMAT),
  algorithm: z.literal(SIGNATURE_ALGORITHM),
  signature: z.string().min(4).max(2048).regex(BASE64, { error: 'expected standard base64' }),
  chain: z
    .array(z.string().max(MAX_PEM_CHARS).regex(PEM_CERT, { error: 'expected exactly one PEM certificate' }))
    .min(1, { error: 'expected at least the signing certificate' }),
  /** Optional: the root-signed revocation list (revocation.ts). */
  revocations: SignedRevocationsSchema.optional(),
  /** Optional: a new root vouched for by the pinned root (root-rotation.ts). */
  rootRotation: SignedRotationSchema.optional(),
});
export type SignatureEnvelope = z.output<typeof EnvelopeSchema>;

export interface VerifyCompatSignatureInput {
  /** The exact bytes of compat.yaml as downloaded. */
  document: Uint8Array;
  /** The bytes of compat.yaml.sig, or undefined when the mirror had none. */
  envelope: Uint8Array | undefined;
  /** One or more PEM certificates the appliance trusts (several during a key rotation). */
  trustedRootsPem: string;
  /** Milliseconds since the epoch; certificate validity is judged at this instant. */
  now: number;
  /** Names the document in messages (file path or URL). */
  source?: string;
  /**
   * The revocation list the appliance holds (stored, already verified). The envelope's own list is
   * verified too, and the higher-numbered of the two applies: an envelope without a list, or with an
   * older one, never lifts a revocation.
   */
  revocations?: VerifiedRevocations;
  /**
   * The root rotation the appliance has adopted (stored, already verified against the pinned
   * roots). When absent, the envelope's own rotation (verified here) applies; when both are there,
   * the stored one does. Either way the chain may end at the new root, and at the rotated-from root
   * only until the rotation's overlap ends.
   */
  rotation?: VerifiedRotation;
}

export interface VerifiedSignature {
  /** Subject of the signing certificate, e.g. `CN=clgw release signing, O=Example`. */
  signer: string;
  /** Subjects from the signing certificate up to and including the pinned root. */
  chain: string[];
  /** The number of the revocation list the chain was checked against, if there was one. */
  revocationList?: number;
}

/**
 * Verifies compat.yaml against its detached envelope and the pinned roots. Throws
 * `SIGNATURE_MISSING` (no envelope), `SIGNATURE_INVALID` (malformed envelope, or the signature
 * does not match the document), `CHAIN_INVALID` (the certificates do not lead to a pinned root,
 * naming the certificate and the reason), `CERT_REVOKED` (a certificate of the chain is on the
 * revocation list, naming its serial and subject) or `CONFIG_INVALID` (no usable pinned root). A
 * revocation list in the envelope that does not verify against a pinned root's key refuses the
 * whole document (`SIGNATURE_INVALID` naming the list).
 */
export function verifyCompatSignature(input: VerifyCompatSignatureInput): VerifiedSignature {
  const source = input.source ?? 'compat.yaml';
  const imageRoots = parseTrustedRoots(input.trustedRootsPem);
  if (input.envelope === undefined)
    throw new ClgwError('SIGNATURE_MISSING', `${source} has no signature (${source}.sig is missing)`, {
      details: { source },
    });
  const envelope = parseEnvelope(input.envelope, source);
  const certs = envelope.chain.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (e) {
      throw new ClgwError('SIGNATURE_INVALID', `${source}.sig: chain[${i}] is not a readable certificate`, {
        cause: e,
        details: { source, index: i },
      });
    }
  });

  const offeredRotation = envelope.rootRotation
    ? rotationOf(envelope.rootRotation, imageRoots, input.now, source)
    : undefined;
  const trust = trustAt(imageRoots, input.rotation ?? offeredRotation, input.now);
  const offered = envelope.revocations
    ? verifyRevocations(envelope.revocations, trust.listRoots, revocationsWhere(source))
    : undefined;
  const revocations = newerRevocations(input.revocations, offered).effective;
  if (revocations) refuseRevoked(certs, revocations.list, source);

  const anchor = verifyChainRotated(certs, trust, input.now, source);

  const leaf = certs[0]!;
  const signature = Buffer.from(envelope.signature, 'base64');
  let ok = false;
  try {
    ok = cryptoVerify(
      'sha256',
      input.document,
      {
        key: leaf.publicKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      },
      signature,
    );
  } catch (e) {
    throw new ClgwError(
      'SIGNATURE_INVALID',
      `${source}: signature cannot be checked: ${(e as Error).message}`,
      {
        cause: e,
        details: { source },
      },
    );
  }
  if (!ok)
    throw new ClgwError(
      'SIGNATURE_INVALID',
      `${source}: signature does not match the document for signer ${subjectOf(leaf)} (altered document or wrong key)`,
      { details: { source, signer: subjectOf(leaf) } },
    );

  const subjects = certs.map(subjectOf);
  if (certs[certs.length - 1]!.fingerprint256 !== anchor.fingerprint256) subjects.push(subjectOf(anchor));
  return {
    signer: subjectOf(leaf),
    chain: subjects,
    ...(revocations ? { revocationList: revocations.list.number } : {}),
  };
}

/**
 * The revocation list carried by an envelope, verified against the pinned roots; undefined when
 * the envelope carries none. Throws `SIGNATURE_INVALID` for a malformed envelope or a list whose
 * signature does not verify. The agent calls this first, to persist a newer list before the
 * document is verified against it (persist before acting).
 */
export function envelopeRevocations(
  bytes: Uint8Array,
  trustedRootsPem: string,
  source = 'compat.yaml',
  rotation?: VerifiedRotation,
): VerifiedRevocations | undefined {
  const envelope = parseEnvelope(bytes, source);
  if (!envelope.revocations) return undefined;
  // A list may be signed by the rotation's new root as well as by the pinned ones (trustAt).
  const { listRoots } = trustAt(parseTrustedRoots(trustedRootsPem), rotation, 0);
  return verifyRevocations(envelope.revocations, listRoots, revocationsWhere(source));
}

/**
 * The root rotation carried by an envelope, verified against the pinned roots at `now`; undefined
 * when the envelope carries none, or one whose new root is already pinned. Throws
 * `SIGNATURE_INVALID` for a malformed envelope or a rotation that does not verify. The agent calls
 * this first, to persist the rotation before anything is judged by it (persist before acting).
 */
export function envelopeRotation(
  bytes: Uint8Array,
  trustedRootsPem: string,
  now: number,
  source = 'compat.yaml',
): VerifiedRotation | undefined {
  const envelope = parseEnvelope(bytes, source);
  if (!envelope.rootRotation) return undefined;
  return rotationOf(envelope.rootRotation, parseTrustedRoots(trustedRootsPem), now, source);
}

function rotationOf(
  signed: NonNullable<SignatureEnvelope['rootRotation']>,
  imageRoots: X509Certificate[],
  now: number,
  source: string,
): VerifiedRotation | undefined {
  if (rotationIsMoot(signed, imageRoots)) return undefined;
  return verifyRootRotation(signed, imageRoots, now, `the root rotation in ${source}.sig`);
}

/**
 * {@link verifyChain} against the roots that apply now. A chain that fails but would end at a root
 * whose overlap has ended is refused for that reason, so the message says what happened.
 */
function verifyChainRotated(
  certs: X509Certificate[],
  trust: ReturnType<typeof trustAt>,
  now: number,
  source: string,
): X509Certificate {
  try {
    return verifyChain(certs, trust.chainRoots, now, source);
  } catch (e) {
    for (const { root, until, successor } of trust.retired) {
      let retiredOk = false;
      try {
        verifyChain(certs, [root], now, source);
        retiredOk = true;
      } catch {
        // Not a chain to this retired root either: the original error stands.
      }
      if (retiredOk)
        throw new ClgwError(
          'CHAIN_INVALID',
          `${source}.sig: the chain ends at the old release root "${subjectOf(root)}", whose overlap ended at ${until}: since then only chains to its successor "${subjectOf(successor)}" are accepted`,
          { cause: e, details: { source, root: subjectOf(root), overlapUntil: until } },
        );
    }
    throw e;
  }
}

function revocationsWhere(source: string): string {
  return `the revocation list in ${source}.sig`;
}

/** `CERT_REVOKED` for the first certificate of the chain whose serial is on `list`. */
function refuseRevoked(certs: X509Certificate[], list: RevocationList, source: string): void {
  const revoked = new Set(list.serials);
  certs.forEach((cert, index) => {
    const serial = serialOf(cert);
    if (!revoked.has(serial)) return;
    const subject = subjectOf(cert);
    const role = index === 0 ? 'signing certificate' : 'intermediate certificate';
    throw new ClgwError(
      'CERT_REVOKED',
      `${source}.sig: ${role} "${subject}" (chain[${index}]) is revoked: its serial ${serial} is on revocation list ${list.number} (issued ${list.issued})`,
      { details: { source, serial, subject, index, listNumber: list.number } },
    );
  });
}

/**
 * Parses the pinned roots (PEM, one or more certificates). Throws `CONFIG_INVALID` when there is
 * none or one is not a readable CA certificate: running without a trust anchor is never an option.
 */
export function parseTrustedRoots(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_BLOCKS) ?? [];
  if (blocks.length === 0)
    throw new ClgwError(
      'CONFIG_INVALID',
      'no trusted release root certificate is configured (no PEM certificate found)',
    );
  return blocks.map((block, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (e) {
      throw new ClgwError('CONFIG_INVALID', `trusted root #${i + 1} is not a readable certificate`, {
        cause: e,
      });
    }
    if (!cert.ca)
      throw new ClgwError('CONFIG_INVALID', `trusted root ${subjectOf(cert)} is not a CA certificate`, {
        details: { root: subjectOf(cert) },
      });
    return cert;
  });
}

/** Parses and strictly validates a `compat.yaml.sig` envelope; `SIGNATURE_INVALID` when malformed. */
export function parseEnvelope(bytes: Uint8Array, source = 'compat.yaml'): SignatureEnvelope {
  const bad = (why: string, cause?: unknown): ClgwError =>
    new ClgwError('SIGNATURE_INVALID', `${source}.sig is malformed: ${why}`, { cause, details: { source } });
  if (bytes.byteLength > MAX_ENVELOPE_BYTES)
    throw bad(`${bytes.byteLength} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad(`not UTF-8 JSON (${(e as Error).message})`, e);
  }
  const result = EnvelopeSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.map(String).join('.') || '(envelope)';
    const what = issue.code === 'unrecognized_keys' ? `unknown keys ${issue.keys.join(', ')}` : issue.message;
    throw bad(`${where}: ${what}`);
  }
  return result.data;
}

/**
 * Walks signing certificate → intermediates → pinned root and returns the pinned root that
 * issued the last certificate. Every rule failure is CHAIN_INVALID naming the certificate.
 */
function verifyChain(
  certs: X509Certificate[],
  roots: X509Certificate[],
  now: number,
  source: string,
): X509Certificate {
  const fail = (cert: X509Certificate, index: number | 'root', why: string, cause?: unknown): ClgwError =>
    new ClgwError(
      'CHAIN_INVALID',
      `${source}.sig: certificate "${subjectOf(cert)}" (${index === 'root' ? 'pinned root' : `chain[${index}]`}) ${why}`,
      { cause, details: { source, subject: subjectOf(cert), index } },
    );
  const fieldsOf = (cert: X509Certificate, index: number | 'root'): X509Fields => {
    try {
      return readX509Fields(cert.raw);
    } catch (e) {
      throw fail(cert, index, `cannot be read: ${(e as Error).message}`, e);
    }
  };

  if (certs.length > MAX_CHAIN_LENGTH)
    throw new ClgwError(
      'CHAIN_INVALID',
      `${source}.sig: chain has ${certs.length} certificates, at most ${MAX_CHAIN_LENGTH} are allowed`,
      { details: { source, length: certs.length } },
    );

  const fields = certs.map(fieldsOf);
  // A copy of a pinned root at the end of the envelope is the anchor, not an intermediate: it does
  // not count against path lengths, and its self-signature is not judged (see below).
  const last = certs[certs.length - 1]!;
  const lastIndex = certs.length - 1;
  const belowRoot =
    certs.length > 1 && roots.some((r) => r.fingerprint256 === last.fingerprint256)
      ? certs.length - 1
      : certs.length;

  const leaf = certs[0]!;
  if (fields[0]!.basicConstraints?.ca)
    throw fail(leaf, 0, 'is a CA certificate; releases must be signed by an end-entity certificate');
  if (!(leaf.keyUsage ?? []).includes(CODE_SIGNING_EKU))
    throw fail(leaf, 0, `lacks the code-signing extended key usage (${CODE_SIGNING_EKU})`);
  if (leaf.publicKey.asymmetricKeyType !== 'rsa')
    throw fail(
      leaf,
      0,
      `has a key of type ${leaf.publicKey.asymmetricKeyType ?? 'unknown'}; the envelope's ${SIGNATURE_ALGORITHM} signature needs an RSA key`,
    );

  certs.forEach((cert, i) => {
    const why = validityProblem(cert, now);
    if (why) throw fail(cert, i, why);
  });

  for (let i = 0; i < belowRoot; i++) {
    const cert = certs[i]!;
    const weakKey = keyProblem(cert);
    if (weakKey) throw fail(cert, i, weakKey);
    const weakSignature = signatureProblem(fields[i]!.signatureAlgorithm);
    if (weakSignature) throw fail(cert, i, weakSignature);
  }

  for (let i = 1; i < certs.length; i++) {
    const child = certs[i - 1]!;
    const issuer = certs[i]!;
    const why = issuerProblem(fields[i]!, child, certs.slice(1, Math.min(i, belowRoot)));
    if (why) throw fail(issuer, i, why);
    if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey))
      throw fail(child, i - 1, `was not issued by the next certificate in the chain, "${subjectOf(issuer)}"`);
  }

  // Names can be forged, keys cannot: a pinned root counts only if its key verifies `last`.
  const anchor = roots.find((root) => last.checkIssued(root) && last.verify(root.publicKey));
  if (!anchor) {
    const claimed = last.issuer.split('\n').join(', ');
    throw fail(
      last,
      lastIndex,
      `was not issued by a pinned root (it names issuer "${claimed}"; pinned: ${roots.map((r) => `"${subjectOf(r)}"`).join(', ')})`,
    );
  }
  const rootProblem = validityProblem(anchor, now);
  if (rootProblem) throw fail(anchor, 'root', rootProblem);
  // The pinned root's key signs the top of the chain, so it must be strong. Its self-signature is
  // never relied on — trust comes from pinning — so its algorithm is not judged (as in OpenSSL).
  const weakRoot = keyProblem(anchor);
  if (weakRoot) throw fail(anchor, 'root', weakRoot);
  const rootIssuing = issuerProblem(
    fieldsOf(anchor, 'root'),
    certs[belowRoot - 1]!,
    certs.slice(1, belowRoot),
  );
  if (rootIssuing) throw fail(anchor, 'root', rootIssuing);
  return anchor;
}

/** Why the signature on a certificate is too weak to rely on, or undefined. */
function signatureProblem(alg: SignatureAlgorithm): string | undefined {
  if (alg.hash === undefined)
    return `is signed with an algorithm that is not accepted (${alg.name}); accepted: RSA (PKCS#1 v1.5 or PSS) or ECDSA with SHA-256, SHA-384 or SHA-512, Ed25519, Ed448`;
  if (!STRONG_HASHES.includes(alg.hash))
    return `is signed with ${alg.name} (${alg.hash}); signatures over SHA-1, MD5 or other digests weaker than SHA-256 are refused`;
  return undefined;
}

/**
 * Why a certificate (its `fields`) may not issue `child`, or undefined. `below` are the
 * intermediate CAs between it and the signing certificate (RFC 5280 §4.2.1.9; self-issued ones
 * count too — a chain this short has no room for key-rollover certificates).
 */
function issuerProblem(
  fields: X509Fields,
  child: X509Certificate,
  below: X509Certificate[],
): string | undefined {
  const bc = fields.basicConstraints;
  if (!bc?.ca)
    return `is not a CA certificate (no basicConstraints CA:TRUE), so it cannot issue "${subjectOf(child)}"`;
  if (fields.keyUsage && !fields.keyUsage.keyCertSign)
    return `has a keyUsage without keyCertSign, so it cannot issue "${subjectOf(child)}"`;
  if (bc.pathLength !== undefined && below.length > bc.pathLength) {
    const allowed =
      bc.pathLength === 0
        ? 'no intermediate CA'
        : `at most ${bc.pathLength} intermediate CA${bc.pathLength === 1 ? '' : 's'}`;
    return `has pathLenConstraint ${bc.pathLength}, which allows ${allowed} below it, but the chain has ${below.length}: ${below.map((c) => `"${subjectOf(c)}"`).join(', ')}`;
  }
  return undefined;
}

function validityProblem(cert: X509Certificate, now: number): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (Number.isNaN(from) || Number.isNaN(to)) return 'has an unreadable validity period';
  if (now < from) return `is not valid before ${new Date(from).toISOString()} (now ${iso(now)})`;
  if (now > to) return `expired at ${new Date(to).toISOString()} (now ${iso(now)})`;
  return undefined;
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

/** `CN=…, O=…` from Node's newline-separated distinguished name. */
export function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}
