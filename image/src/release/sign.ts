import { constants, createPrivateKey, sign, verify, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import {
  encodeRevocationList,
  parseRevocationList,
  type RevocationList,
  type SignedRevocations,
  SignedRevocationsSchema,
  serialOf,
  type VerifiedRevocations,
  verifyRevocations,
} from '@clgw/core/release/revocation.js';
import {
  certDigest,
  encodeRotationStatement,
  ROOT_ROTATION_FORMAT,
  type SignedRotation,
  SignedRotationSchema,
  type VerifiedRotation,
  verifyRootRotation,
} from '@clgw/core/release/root-rotation.js';
import {
  parseTrustedRoots,
  SIGNATURE_ALGORITHM,
  SIGNATURE_FORMAT,
  type SignatureEnvelope,
} from '@clgw/core/release/signature.js';
import type { CertificateAndKey, DevKeys } from './keys.js';

/**
 * The tree's current revocation list (`clgw-release revoke` writes it): the signed list as the
 * envelope carries it. Every envelope signed for the tree embeds it, so appliances meet it with
 * whatever document they fetch next.
 */
export const REVOCATIONS_FILE = 'revocations.json';

/**
 * The tree's root rotation (`clgw-release rotate-root` writes it): the new root and the old root's
 * signed statement, as the envelope carries them. Every envelope signed for the tree embeds it, for
 * as long as appliances pinning the old root may still be out there (also after the overlap: a
 * factory-reset appliance adopts it again from there).
 */
export const ROOT_ROTATION_FILE = 'root-rotation.json';

export interface SignOptions {
  /** Extra PEM certificates appended to the embedded chain (after signing + intermediate). */
  chain?: string[];
  /** The root-signed revocation list to carry (the tree's, {@link readTreeRevocations}). */
  revocations?: SignedRevocations;
  /** The old-root-signed root rotation to carry (the tree's, {@link readTreeRotation}). */
  rootRotation?: SignedRotation;
}

/**
 * Signs `document` (the exact bytes of compat.yaml) with the signing key: RSA-PSS, SHA-256,
 * salt length = digest length. Returns the `compat.yaml.sig` envelope bytes (JSON) carrying the
 * signing and intermediate certificates; the root is never embedded — appliances pin it.
 */
export function signDocument(document: Uint8Array, keys: DevKeys, options: SignOptions = {}): Buffer {
  const cert = new X509Certificate(keys.signing.certPem);
  const key = createPrivateKey(keys.signing.keyPem);
  if (!cert.checkPrivateKey(key))
    throw new ClgwError(
      'CONFIG_INVALID',
      `signing key does not belong to certificate ${cert.subject.replace(/\n/g, ', ')}`,
    );
  const params = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  const signature = sign('sha256', document, { key, ...params });
  // A signature we cannot verify ourselves must never be published.
  if (!verify('sha256', document, { key: cert.publicKey, ...params }, signature))
    throw new ClgwError('INTERNAL', 'fresh signature does not verify with the signing certificate');
  const chain = [keys.signing.certPem, keys.intermediate.certPem, ...(options.chain ?? [])].map(normalizePem);
  if (options.revocations) refuseSigningRevoked(chain, options.revocations);
  const envelope: SignatureEnvelope = {
    format: SIGNATURE_FORMAT,
    algorithm: SIGNATURE_ALGORITHM,
    signature: signature.toString('base64'),
    chain,
    ...(options.revocations
      ? { revocations: { list: options.revocations.list, signature: options.revocations.signature } }
      : {}),
    ...(options.rootRotation
      ? {
          rootRotation: {
            cert: options.rootRotation.cert,
            statement: options.rootRotation.statement,
            signature: options.rootRotation.signature,
          },
        }
      : {}),
  };
  return Buffer.from(`${JSON.stringify(envelope, null, 2)}\n`);
}

/**
 * Refuses (CONFIG_INVALID) to sign with a chain the list revokes: every appliance would refuse the
 * document. A new signing certificate is issued first, then the old one revoked.
 */
function refuseSigningRevoked(chain: string[], signed: SignedRevocations): void {
  const list = parseRevocationList(Buffer.from(signed.list, 'base64'), 'the revocation list');
  for (const pem of chain) {
    const cert = new X509Certificate(pem);
    if (list.serials.includes(serialOf(cert)))
      throw new ClgwError(
        'CONFIG_INVALID',
        `certificate "${cert.subject.split('\n').join(', ')}" (serial ${serialOf(cert)}) is on revocation list ${list.number}: appliances would refuse what it signs; issue a new signing certificate (and intermediate, if that is the one revoked) first`,
        { details: { serial: serialOf(cert), listNumber: list.number } },
      );
  }
}

/**
 * Signs a revocation list with the release root's private key (RSA-PSS, SHA-256, salt length =
 * digest length — as compat.yaml's signature) over its canonical bytes. The signature is checked
 * against the root certificate before it is returned: a list appliances would refuse must never
 * be published (it would refuse every document it travels with).
 */
export function signRevocationList(list: RevocationList, root: CertificateAndKey): SignedRevocations {
  if (root.keyPem === undefined)
    throw new ClgwError('CONFIG_INVALID', "signing a revocation list needs the release root's private key");
  const cert = new X509Certificate(root.certPem);
  const key = createPrivateKey(root.keyPem);
  if (!cert.checkPrivateKey(key))
    throw new ClgwError(
      'CONFIG_INVALID',
      `the root private key does not belong to the root certificate ${cert.subject.replace(/\n/g, ', ')}`,
    );
  const bytes = encodeRevocationList(list);
  parseRevocationList(bytes, 'the new revocation list');
  const params = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  const signature = sign('sha256', bytes, { key, ...params });
  const signed = { list: bytes.toString('base64'), signature: signature.toString('base64') };
  verifyRevocations(signed, [cert], 'the new revocation list');
  return signed;
}

/**
 * The old root's statement vouching for `newRootCertPem` (RSA-PSS, SHA-256 over the canonical
 * statement, as a revocation list is signed), with chains to the old root accepted until
 * `overlapUntil` (ISO UTC). Verified against the old root before it is returned: a rotation
 * appliances would refuse must never be published (it would refuse every document it travels with).
 */
export function signRootRotation(
  newRootCertPem: string,
  oldRoot: CertificateAndKey,
  overlapUntil: string,
  now = Date.now(),
): VerifiedRotation {
  if (oldRoot.keyPem === undefined)
    throw new ClgwError(
      'CONFIG_INVALID',
      "vouching for a new root needs the current release root's private key",
    );
  const cert = new X509Certificate(oldRoot.certPem);
  const key = createPrivateKey(oldRoot.keyPem);
  if (!cert.checkPrivateKey(key))
    throw new ClgwError(
      'CONFIG_INVALID',
      `the root private key does not belong to the root certificate ${cert.subject.replace(/\n/g, ', ')}`,
    );
  const newRoot = new X509Certificate(newRootCertPem);
  const bytes = encodeRotationStatement({
    format: ROOT_ROTATION_FORMAT,
    newRoot: certDigest(newRoot),
    overlapUntil,
  });
  const params = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  const signed: SignedRotation = {
    cert: normalizePem(newRootCertPem),
    statement: bytes.toString('base64'),
    signature: sign('sha256', bytes, { key, ...params }).toString('base64'),
  };
  return verifyRootRotation(signed, [cert], now, 'the new root rotation');
}

/**
 * The tree's file holds the rotation as the envelope carries it plus `previousRoot`, the old root's
 * certificate (the envelope leaves it out: appliances pin it). With it the tools can check the
 * rotation, and lists signed by the old root, also once the keys directory holds the new root.
 */
export interface TreeRotation {
  /** What every envelope carries. */
  signed: SignedRotation;
  /** The root that vouched for the new one. */
  previousRootPem: string;
}

/** The tree's file for a rotation made with `previousRoot`'s key. */
export function treeRotationFile(signed: SignedRotation, previousRootPem: string): object {
  return { ...signed, previousRoot: normalizePem(previousRootPem) };
}

/**
 * The tree's root rotation (`<tree>/root-rotation.json`), verified against the old root it names,
 * which must be the keys directory's root (before the switch) or be succeeded by it (after).
 * Undefined when the tree has none. A file that does not verify is CONFIG_INVALID: publishing it
 * would make every appliance refuse the document.
 */
export async function readTreeRotation(tree: string, rootCertPem: string): Promise<TreeRotation | undefined> {
  const file = path.join(tree, ROOT_ROTATION_FILE);
  const text = await readTreeFile(file);
  if (text === undefined) return undefined;
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw new Error('not a JSON object');
    const { previousRoot, ...rest } = json as Record<string, unknown>;
    if (typeof previousRoot !== 'string' || previousRoot.length > 16 * 1024)
      throw new Error('previousRoot: expected the old root certificate (PEM)');
    const signed = SignedRotationSchema.parse(rest);
    const previous = parseTrustedRoots(previousRoot);
    const verified = verifyRootRotation(signed, previous, Date.now(), file);
    const keysRoot = parseTrustedRoots(rootCertPem)[0]!.fingerprint256;
    if (keysRoot !== previous[0]!.fingerprint256 && keysRoot !== verified.newRoot.fingerprint256)
      throw new Error("the keys directory's root.pem is neither the rotation's old root nor its new one");
    return { signed, previousRootPem: previousRoot };
  } catch (e) {
    throw new ClgwError(
      'CONFIG_INVALID',
      `${file} is not a root rotation of the keys directory's release root: ${(e as Error).message}`,
      { cause: e, details: { file } },
    );
  }
}

/**
 * The roots a tree's revocation list may be signed by: the keys directory's root and, with a
 * rotation in the tree ({@link readTreeRotation}), both its old and new roots (as appliances
 * accept, root-rotation.ts `trustAt`).
 */
export function listRootsPem(rotation: TreeRotation | undefined, rootCertPem: string): string {
  return rotation ? `${rotation.previousRootPem.trim()}\n${rotation.signed.cert}` : rootCertPem;
}

/**
 * The tree's revocation list (`<tree>/revocations.json`), verified against the root certificate
 * the keys directory pins; undefined when the tree has none. A file that does not verify is
 * CONFIG_INVALID: publishing it would make every appliance refuse the document.
 */
export async function readTreeRevocations(
  tree: string,
  rootCertPem: string,
): Promise<VerifiedRevocations | undefined> {
  const file = path.join(tree, REVOCATIONS_FILE);
  const text = await readTreeFile(file);
  if (text === undefined) return undefined;
  try {
    const signed = SignedRevocationsSchema.parse(JSON.parse(text));
    return verifyRevocations(signed, parseTrustedRoots(rootCertPem), file);
  } catch (e) {
    throw new ClgwError(
      'CONFIG_INVALID',
      `${file} is not a revocation list signed by the release root: ${(e as Error).message}`,
      { cause: e, details: { file } },
    );
  }
}

/** One certificate, `\n` line ends, one trailing newline — the form the envelope schema accepts. */
function normalizePem(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trim()}\n`;
}

/** A release tree's optional file: undefined when absent, CONFIG_INVALID when unreadable. */
async function readTreeFile(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClgwError('CONFIG_INVALID', `cannot read ${file}: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
}
