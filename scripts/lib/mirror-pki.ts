/**
 * A throw-away PKI for the development mirror and the tests: a test CA and server certificates it
 * issues, made with node-forge (keys from Node's crypto, which is fast). Never used on an appliance.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import forge from 'node-forge';

/** A certificate and its private key, both PEM. */
export interface KeyCert {
  certPem: string;
  keyPem: string;
}

/** What a mirror serves with: its server certificate and the CA that clients must trust. */
export interface MirrorPki {
  ca: KeyCert;
  server: KeyCert;
  /** Path of the CA certificate file, for `curl --cacert` and the agent's `ca` setting. */
  caFile: string;
}

/** Names the mirror's certificate is valid for: loopback and the test domain the DNS tests use. */
export const MIRROR_NAMES = ['localhost', '127.0.0.1', '::1', 'download.clgw.test'];

const DAY = 24 * 60 * 60 * 1000;
const FILES = { caCert: 'ca.pem', caKey: 'ca-key.pem', cert: 'server.pem', key: 'server-key.pem' } as const;

function newKeyPair(): {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  keyPem: string;
} {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
    keyPem: privateKey,
  };
}

function baseCertificate(publicKey: forge.pki.PublicKey, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the high bit of the first byte clear.
  cert.serialNumber = `0${randomBytes(16).toString('hex').slice(1)}`;
  cert.validity.notBefore = new Date(Date.now() - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + days * DAY);
  return cert;
}

/** A self-signed certificate authority named `commonName`. */
export function createCa(commonName: string, days = 3650): KeyCert {
  const keys = newKeyPair();
  const cert = baseCertificate(keys.publicKey, days);
  const subject = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'clgw test' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}

function altNames(names: readonly string[]) {
  return names.map((n) => (net.isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

/** A TLS server certificate for `names` (DNS names and IP addresses), issued by `ca`. */
export function issueServerCert(ca: KeyCert, names: readonly string[], days = 825): KeyCert {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = newKeyPair();
  const cert = baseCertificate(keys.publicKey, days);
  cert.setSubject([{ name: 'commonName', value: names[0] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(names) },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}

/** A self-signed server certificate (no CA at all) for `names`. */
export function selfSignedServerCert(names: readonly string[], days = 30): KeyCert {
  const keys = newKeyPair();
  const cert = baseCertificate(keys.publicKey, days);
  const subject = [{ name: 'commonName', value: names[0] ?? 'localhost' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(names) },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}

/** Whether a stored PKI is usable: issued by its CA, valid for a while yet, and for all `names`. */
function usable(pki: MirrorPki, names: readonly string[]): boolean {
  try {
    const ca = new X509Certificate(pki.ca.certPem);
    const server = new X509Certificate(pki.server.certPem);
    if (!server.checkIssued(ca) || !server.verify(ca.publicKey)) return false;
    if (Date.parse(server.validTo) < Date.now() + DAY || Date.parse(ca.validTo) < Date.now() + DAY)
      return false;
    return names.every((n) => (net.isIP(n) ? server.checkIP(n) : server.checkHost(n)) !== undefined);
  } catch {
    return false;
  }
}

async function readPki(dir: string): Promise<MirrorPki | undefined> {
  try {
    const read = (f: string) => fs.readFile(path.join(dir, f), 'utf8');
    return {
      ca: { certPem: await read(FILES.caCert), keyPem: await read(FILES.caKey) },
      server: { certPem: await read(FILES.cert), keyPem: await read(FILES.key) },
      caFile: path.join(dir, FILES.caCert),
    };
  } catch {
    return undefined;
  }
}

async function writePkiFiles(dir: string, pki: MirrorPki): Promise<void> {
  const write = async (f: string, data: string, mode: number) => {
    const temp = path.join(dir, `.${f}.${randomBytes(4).toString('hex')}.tmp`);
    await fs.writeFile(temp, data, { mode });
    await fs.rename(temp, path.join(dir, f));
  };
  await write(FILES.caCert, pki.ca.certPem, 0o644);
  await write(FILES.caKey, pki.ca.keyPem, 0o600);
  await write(FILES.key, pki.server.keyPem, 0o600);
  await write(FILES.cert, pki.server.certPem, 0o644);
}

/**
 * The mirror's test CA and server certificate in `tlsDir` (ca.pem, ca-key.pem, server.pem,
 * server-key.pem), reused when present and usable, otherwise made anew. Several processes may call
 * this at once (parallel test workers): a new PKI is built in a sibling directory and renamed into
 * place, so every caller ends up with one consistent set.
 */
export async function ensureMirrorPki(
  tlsDir: string,
  names: readonly string[] = MIRROR_NAMES,
): Promise<MirrorPki> {
  const dir = path.resolve(tlsDir);
  const existing = await readPki(dir);
  if (existing && usable(existing, names)) return existing;

  const ca = createCa('clgw test mirror CA');
  const pki: MirrorPki = { ca, server: issueServerCert(ca, names), caFile: path.join(dir, FILES.caCert) };
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const temp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  await fs.mkdir(temp);
  try {
    await writePkiFiles(temp, pki);
    // rename() replaces a missing or empty directory atomically and fails on a non-empty one.
    await fs.rename(temp, dir);
    return pki;
  } catch {
    await fs.rm(temp, { recursive: true, force: true });
  }
  const winner = await readPki(dir);
  if (winner && usable(winner, names)) return winner;
  // A stale or foreign set: replace the four files in place.
  await fs.mkdir(dir, { recursive: true });
  await writePkiFiles(dir, pki);
  return pki;
}
