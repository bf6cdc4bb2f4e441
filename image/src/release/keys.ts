import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import forge from 'node-forge';

/**
 * Release signing keys for development, demos and tests: a self-signed root CA (the certificate
 * appliances pin), an intermediate CA, and a code-signing certificate that signs compat.yaml.
 * The same three-level shape a vendor's offline root / online signer would use, so the verifier
 * is exercised on a real chain. node-forge builds the certificates; keys come from Node's native
 * generator through forge, so generation takes well under a second.
 */

export interface CertificateAndKey {
  certPem: string;
  /** Absent when the key is kept elsewhere (an offline root). */
  keyPem?: string;
}

export interface DevKeys {
  root: CertificateAndKey;
  intermediate: CertificateAndKey;
  signing: { certPem: string; keyPem: string };
}

export interface GenerateKeysOptions {
  /** Milliseconds since the epoch the certificates are valid from (one hour of slack is added). */
  now?: number;
  /** RSA modulus size for all three keys. */
  bits?: 2048 | 3072 | 4096;
  /** Organization name in the subjects. */
  organization?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * File names of release keys (certificates `.pem`, private keys `.key`). A keys directory — what
 * `loadKeys` reads and a release build or `clgw-release sign` is given — holds the three
 * certificates and the signing key only. The CA's private keys (`root.key`, `intermediate.key`)
 * are needed only to issue certificates: `saveKeys` writes them to a directory of their own (to be
 * kept offline), never beside the signing key, and `loadKeys` refuses a directory that holds the
 * root's. The root's key is the one that matters most: every appliance pins its certificate.
 */
export const KEY_FILES = {
  rootCert: 'root.pem',
  rootKey: 'root.key',
  intermediateCert: 'intermediate.pem',
  intermediateKey: 'intermediate.key',
  signingCert: 'signing.pem',
  signingKey: 'signing.key',
} as const;

/** The CA's private keys: written to the CA directory, never to the keys directory. */
const CA_KEY_FILES = [KEY_FILES.rootKey, KEY_FILES.intermediateKey] as const;

/**
 * Generates a fresh root CA (10 years), intermediate CA (5 years, path length 0) and
 * code-signing certificate (2 years), RSA 3072 by default.
 */
export function generateDevKeys(options: GenerateKeysOptions = {}): DevKeys {
  const now = options.now ?? Date.now();
  const bits = options.bits ?? 3072;
  const org = options.organization ?? 'clgw development';
  const notBefore = new Date(now - 60 * 60 * 1000);

  const rootKeys = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
  const rootSubject = [
    { name: 'organizationName', value: org },
    { name: 'commonName', value: `${org} release root` },
  ];
  const root = issue({
    subject: rootSubject,
    publicKey: rootKeys.publicKey,
    issuer: { subject: rootSubject, privateKey: rootKeys.privateKey },
    notBefore,
    notAfter: new Date(now + 3650 * DAY_MS),
    ca: { pathLength: undefined },
  });

  const interKeys = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
  const interSubject = [
    { name: 'organizationName', value: org },
    { name: 'commonName', value: `${org} release intermediate` },
  ];
  const intermediate = issue({
    subject: interSubject,
    publicKey: interKeys.publicKey,
    issuer: { subject: rootSubject, privateKey: rootKeys.privateKey, cert: root },
    notBefore,
    notAfter: new Date(now + 5 * 365 * DAY_MS),
    ca: { pathLength: 0 },
  });

  const signKeys = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
  const signing = issue({
    subject: [
      { name: 'organizationName', value: org },
      { name: 'commonName', value: `${org} release signing` },
    ],
    publicKey: signKeys.publicKey,
    issuer: { subject: interSubject, privateKey: interKeys.privateKey, cert: intermediate },
    notBefore,
    notAfter: new Date(now + 2 * 365 * DAY_MS),
  });

  return {
    root: {
      certPem: forge.pki.certificateToPem(root),
      keyPem: forge.pki.privateKeyToPem(rootKeys.privateKey),
    },
    intermediate: {
      certPem: forge.pki.certificateToPem(intermediate),
      keyPem: forge.pki.privateKeyToPem(interKeys.privateKey),
    },
    signing: {
      certPem: forge.pki.certificateToPem(signing),
      keyPem: forge.pki.privateKeyToPem(signKeys.privateKey),
    },
  };
}

/**
 * Issues a new code-signing certificate (2 years) and key under the intermediate: what replaces a
 * signing key that leaked, before the old certificate is revoked (`clgw-release revoke`). Needs
 * the intermediate's private key, kept with the CA's keys.
 */
export function issueSigningCert(
  intermediate: CertificateAndKey,
  options: GenerateKeysOptions = {},
): { certPem: string; keyPem: string } {
  if (intermediate.keyPem === undefined)
    throw new ClgwError(
      'CONFIG_INVALID',
      "issuing a signing certificate needs the intermediate's private key",
    );
  return issueUnder({ certPem: intermediate.certPem, keyPem: intermediate.keyPem }, options, {
    role: 'release signing',
    years: 2,
  });
}

/**
 * A new self-signed release root CA (10 years, no path length constraint) and its key: what
 * `clgw-release rotate-root` makes. Its key belongs offline, as the current root's does.
 */
export function generateRootCa(options: GenerateKeysOptions = {}): Required<CertificateAndKey> {
  const now = options.now ?? Date.now();
  const org = options.organization ?? 'clgw development';
  const keys = forge.pki.rsa.generateKeyPair({ bits: options.bits ?? 3072, e: 0x10001 });
  const subject = [
    { name: 'organizationName', value: org },
    { name: 'commonName', value: `${org} release root ${new Date(now).toISOString().slice(0, 10)}` },
  ];
  const root = issue({
    subject,
    publicKey: keys.publicKey,
    issuer: { subject, privateKey: keys.privateKey },
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + 3650 * DAY_MS),
    ca: { pathLength: undefined },
  });
  return { certPem: forge.pki.certificateToPem(root), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * A new intermediate CA (5 years, path length 0) and its key under `root`: the first step of moving
 * signing under a rotated root (then {@link issueSigningCert} under it). Needs the root's key.
 */
export function issueIntermediate(
  root: CertificateAndKey,
  options: GenerateKeysOptions = {},
): Required<CertificateAndKey> {
  if (root.keyPem === undefined)
    throw new ClgwError('CONFIG_INVALID', "issuing an intermediate needs the root's private key");
  return issueUnder({ certPem: root.certPem, keyPem: root.keyPem }, options, {
    role: 'release intermediate',
    years: 5,
    ca: { pathLength: 0 },
  });
}

interface IssueRequest {
  subject: forge.pki.CertificateField[];
  publicKey: forge.pki.rsa.PublicKey;
  issuer: {
    subject: forge.pki.CertificateField[];
    privateKey: forge.pki.rsa.PrivateKey;
    cert?: forge.pki.Certificate;
  };
  notBefore: Date;
  notAfter: Date;
  /** Present for CA certificates; pathLength undefined means unconstrained. */
  ca?: { pathLength: number | undefined };
}

function issue(req: IssueRequest): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = req.publicKey;
  // 16 random bytes with the top bit clear: a positive serial, unique without bookkeeping.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = req.notBefore;
  cert.validity.notAfter = req.notAfter;
  cert.setSubject(req.subject);
  cert.setIssuer(req.issuer.subject);
  const extensions: object[] = [];
  if (req.ca) {
    extensions.push(
      req.ca.pathLength === undefined
        ? { name: 'basicConstraints', cA: true, critical: true }
        : { name: 'basicConstraints', cA: true, pathLenConstraint: req.ca.pathLength, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    );
  } else {
    extensions.push(
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', codeSigning: true },
    );
  }
  extensions.push({ name: 'subjectKeyIdentifier' });
  // Self-signed: the authority key is our own; otherwise it is the issuer's subject key id.
  const authorityKeyId = req.issuer.cert ? req.issuer.cert.generateSubjectKeyIdentifier().getBytes() : true;
  extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId });
  cert.setExtensions(extensions);
  cert.sign(req.issuer.privateKey, forge.md.sha256.create());
  return cert;
}

export interface SaveKeysOptions {
  /** Replace key files that exist (otherwise NOT_ALLOWED, before anything is written). */
  overwrite?: boolean;
  /**
   * Where the CA's private keys go (created 0700, keys 0600): a directory outside `dir`, to be
   * moved offline. Absent: they are not written at all (development keys: nothing ever issues a
   * certificate with them; new keys are generated instead).
   */
  caDir?: string;
}

/**
 * Writes keys into `dir` (created 0700; the signing key 0600, certificates 0644) and the CA's
 * private keys, if any, into `options.caDir`. Refuses (NOT_ALLOWED) a CA directory that is `dir`
 * or inside it, and existing key files unless `overwrite` — a replaced root locks every appliance
 * that pinned it out. With `overwrite`, a CA private key left in `dir` by an older layout is removed.
 */
export async function saveKeys(dir: string, keys: DevKeys, options: SaveKeysOptions = {}): Promise<void> {
  const caDir = options.caDir;
  if (caDir !== undefined) {
    const rel = path.relative(path.resolve(dir), path.resolve(caDir));
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel)))
      throw new ClgwError(
        'NOT_ALLOWED',
        `the CA's private keys go outside the keys directory ${dir}, not into ${caDir}: whatever signs releases with ${dir} must not hold them`,
        { details: { dir, caDir } },
      );
  }
  if (!options.overwrite) {
    await refuseExistingKeys(dir);
    if (caDir !== undefined) await refuseExistingKeys(caDir);
  }
  const files: [string, string, string | undefined, number][] = [
    [dir, KEY_FILES.rootCert, keys.root.certPem, 0o644],
    [dir, KEY_FILES.intermediateCert, keys.intermediate.certPem, 0o644],
    [dir, KEY_FILES.signingCert, keys.signing.certPem, 0o644],
    [dir, KEY_FILES.signingKey, keys.signing.keyPem, 0o600],
  ];
  if (caDir !== undefined) {
    files.push([caDir, KEY_FILES.rootKey, keys.root.keyPem, 0o600]);
    files.push([caDir, KEY_FILES.intermediateKey, keys.intermediate.keyPem, 0o600]);
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  if (caDir !== undefined && files.some(([d, , content]) => d === caDir && content !== undefined))
    await fs.mkdir(caDir, { recursive: true, mode: 0o700 });
  for (const name of CA_KEY_FILES) await fs.rm(path.join(dir, name), { force: true });
  for (const [at, name, content, mode] of files) {
    if (content !== undefined) await writeFileAtomic(path.join(at, name), content, { mode });
  }
}

/**
 * Reads the keys directory written by `saveKeys`: the three certificates and the signing key, which
 * must match the signing certificate. Refuses (CONFIG_INVALID) a directory that holds the root's
 * private key beside the signing key. An intermediate's key there is read (a vendor may keep an
 * online intermediate); nothing here uses it.
 */
export async function loadKeys(dir: string): Promise<DevKeys> {
  const rootKeyFile = path.join(dir, KEY_FILES.rootKey);
  if (await exists(rootKeyFile))
    throw new ClgwError(
      'CONFIG_INVALID',
      `${rootKeyFile}: the release root's private key lies beside the signing key; move it offline (it only issues certificates), then use ${dir} again`,
      { details: { dir, file: rootKeyFile } },
    );
  const read = async (name: string, required: boolean): Promise<string | undefined> => {
    const file = path.join(dir, name);
    try {
      return await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
      throw new ClgwError('CONFIG_INVALID', `cannot read release key file ${file}: ${(e as Error).message}`, {
        cause: e,
        details: { file },
      });
    }
  };
  const keys: DevKeys = {
    root: { certPem: (await read(KEY_FILES.rootCert, true))! },
    intermediate: {
      certPem: (await read(KEY_FILES.intermediateCert, true))!,
      keyPem: await read(KEY_FILES.intermediateKey, false),
    },
    signing: {
      certPem: (await read(KEY_FILES.signingCert, true))!,
      keyPem: (await read(KEY_FILES.signingKey, true))!,
    },
  };
  let matches: boolean;
  try {
    const cert = new X509Certificate(keys.signing.certPem);
    matches = cert.checkPrivateKey(createPrivateKey(keys.signing.keyPem));
  } catch (e) {
    throw new ClgwError('CONFIG_INVALID', `release keys in ${dir} are unreadable: ${(e as Error).message}`, {
      cause: e,
      details: { dir },
    });
  }
  if (!matches)
    throw new ClgwError(
      'CONFIG_INVALID',
      `${path.join(dir, KEY_FILES.signingKey)} does not belong to ${path.join(dir, KEY_FILES.signingCert)}`,
      { details: { dir } },
    );
  return keys;
}

/**
 * Throws NOT_ALLOWED when `dir` already holds any release key file, the CA's included (checked
 * before generating).
 */
export async function refuseExistingKeys(dir: string): Promise<void> {
  for (const name of Object.values(KEY_FILES)) {
    const file = path.join(dir, name);
    if (await exists(file))
      throw new ClgwError('NOT_ALLOWED', `${file} already exists; refusing to replace release keys`, {
        details: { file },
      });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** A certificate and key for `${org} <role>`, issued by `parent` (whose key the caller checked). */
function issueUnder(
  parent: Required<CertificateAndKey>,
  options: GenerateKeysOptions,
  what: { role: string; years: number; ca?: { pathLength: number } },
): Required<CertificateAndKey> {
  const now = options.now ?? Date.now();
  const org = options.organization ?? 'clgw development';
  const parentCert = forge.pki.certificateFromPem(parent.certPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: options.bits ?? 3072, e: 0x10001 });
  const cert = issue({
    subject: [
      { name: 'organizationName', value: org },
      { name: 'commonName', value: `${org} ${what.role}` },
    ],
    publicKey: keys.publicKey,
    issuer: {
      subject: parentCert.subject.attributes.map(
        (a) => ({ name: a.name, value: a.value }) as forge.pki.CertificateField,
      ),
      privateKey: forge.pki.privateKeyFromPem(parent.keyPem) as forge.pki.rsa.PrivateKey,
      cert: parentCert,
    },
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + what.years * 365 * DAY_MS),
    ...(what.ca ? { ca: what.ca } : {}),
  });
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}
