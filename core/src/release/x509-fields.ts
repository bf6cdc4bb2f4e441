/// <reference path="../types/node-forge-asn1.d.ts" />
import asn1, { type Asn1 } from 'node-forge/lib/asn1.js';
import { ClgwError } from '../errors.js';

/**
 * The parts of an X.509 certificate the release chain rules need and Node 20's `X509Certificate`
 * does not expose: the signature algorithm, basicConstraints (with its path length) and keyUsage.
 * Read from the DER (`X509Certificate.raw`) with node-forge's decoder, which handles any key type —
 * forge's own certificate parser refuses EC and Ed25519 keys. The certificate has already been
 * parsed by OpenSSL; this reads a few fields again, it does not validate the certificate.
 */

export interface SignatureAlgorithm {
  /** Dotted OID of the certificate's outer signatureAlgorithm. */
  oid: string;
  /** e.g. `sha256WithRSAEncryption`, `RSASSA-PSS`, `ecdsa-with-SHA384`; the OID when unknown. */
  name: string;
  /**
   * Digest the issuer signed, e.g. `SHA-256`, `SHA-1`, `MD5`; for RSA-PSS the weaker of its
   * message and MGF1 digests. `intrinsic` for EdDSA (the curve fixes the hash); undefined when unknown.
   */
  hash: string | undefined;
}

export interface X509Fields {
  signatureAlgorithm: SignatureAlgorithm;
  /** Absent when the certificate has no basicConstraints extension. */
  basicConstraints?: { ca: boolean; pathLength: number | undefined };
  /** Absent when the certificate has no keyUsage extension (then any usage is allowed). */
  keyUsage?: { keyCertSign: boolean };
}

const CONTEXT_SPECIFIC = 0x80;
const UNIVERSAL = 0x00;
const T = { BOOLEAN: 1, INTEGER: 2, BITSTRING: 3, OCTETSTRING: 4, OID: 6, SEQUENCE: 16 } as const;

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
/** keyUsage bit 5 (RFC 5280 §4.2.1.3): the key may verify signatures on certificates. */
const KEY_CERT_SIGN_BIT = 5;

const HASHES: Record<string, string> = {
  '1.2.840.113549.2.2': 'MD2',
  '1.2.840.113549.2.5': 'MD5',
  '1.3.14.3.2.26': 'SHA-1',
  '2.16.840.1.101.3.4.2.4': 'SHA-224',
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
};

const SIGNATURE_ALGORITHMS: Record<string, { name: string; hash: string }> = {
  '1.2.840.113549.1.1.2': { name: 'md2WithRSAEncryption', hash: 'MD2' },
  '1.2.840.113549.1.1.4': { name: 'md5WithRSAEncryption', hash: 'MD5' },
  '1.2.840.113549.1.1.5': { name: 'sha1WithRSAEncryption', hash: 'SHA-1' },
  '1.3.14.3.2.29': { name: 'sha1WithRSASignature', hash: 'SHA-1' },
  '1.2.840.10040.4.3': { name: 'dsa-with-sha1', hash: 'SHA-1' },
  '1.2.840.10045.4.1': { name: 'ecdsa-with-SHA1', hash: 'SHA-1' },
  '1.2.840.113549.1.1.14': { name: 'sha224WithRSAEncryption', hash: 'SHA-224' },
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', hash: 'SHA-256' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', hash: 'SHA-384' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', hash: 'SHA-512' },
  '1.2.840.10045.4.3.1': { name: 'ecdsa-with-SHA224', hash: 'SHA-224' },
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', hash: 'SHA-256' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', hash: 'SHA-384' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', hash: 'SHA-512' },
  '1.3.101.112': { name: 'Ed25519', hash: 'intrinsic' },
  '1.3.101.113': { name: 'Ed448', hash: 'intrinsic' },
};

/** Reads the signature algorithm, basicConstraints and keyUsage from a DER certificate. */
export function readX509Fields(der: Uint8Array): X509Fields {
  let cert: Asn1;
  try {
    // Bit strings stay bytes: forge would otherwise try to decode the signature as ASN.1.
    cert = asn1.fromDer(binaryString(der), { strict: true, parseAllBytes: true, decodeBitStrings: false });
  } catch (e) {
    throw bad(`not DER (${(e as Error).message})`, e);
  }
  const [tbs, sigAlg] = children(cert, 'Certificate');
  if (!tbs || !sigAlg) throw bad('Certificate is not a SEQUENCE of three');
  const fields: X509Fields = { signatureAlgorithm: readSignatureAlgorithm(sigAlg) };

  const extensionsTag = children(tbs, 'TBSCertificate').find(
    (node) => node.tagClass === CONTEXT_SPECIFIC && node.type === 3,
  );
  if (!extensionsTag) return fields;
  const [extensions] = children(extensionsTag, 'extensions');
  if (!extensions) throw bad('empty extensions');
  const seen = new Set<string>();
  for (const extension of children(extensions, 'Extensions')) {
    const parts = children(extension, 'Extension');
    const oid = oidOf(parts[0], 'extnID');
    // A second copy could say something else than the one OpenSSL used (RFC 5280 §4.2).
    if (seen.has(oid)) throw bad(`extension ${oid} appears twice`);
    seen.add(oid);
    const value = parts[parts.length - 1];
    if (!value || !isUniversal(value, T.OCTETSTRING) || typeof value.value !== 'string')
      throw bad(`extension ${oid} has no value`);
    if (oid === OID_BASIC_CONSTRAINTS) fields.basicConstraints = readBasicConstraints(value.value);
    else if (oid === OID_KEY_USAGE) fields.keyUsage = readKeyUsage(value.value);
  }
  return fields;
}

function readSignatureAlgorithm(node: Asn1): SignatureAlgorithm {
  const [id, params] = children(node, 'signatureAlgorithm');
  const oid = oidOf(id, 'signatureAlgorithm');
  if (oid === OID_RSASSA_PSS) return { oid, name: 'RSASSA-PSS', hash: pssHash(params) };
  const known = SIGNATURE_ALGORITHMS[oid];
  return { oid, name: known?.name ?? oid, hash: known?.hash };
}

/**
 * RSASSA-PSS-params (RFC 4055): hashAlgorithm [0] and maskGenAlgorithm [1], both defaulting to
 * SHA-1. Returns the weaker of the two digests: a PSS signature is no stronger than its MGF1 hash.
 */
function pssHash(params: Asn1 | undefined): string | undefined {
  let hash = 'SHA-1';
  let mgfHash = 'SHA-1';
  if (params && isUniversal(params, T.SEQUENCE)) {
    for (const field of children(params, 'RSASSA-PSS-params')) {
      if (field.tagClass !== CONTEXT_SPECIFIC) continue;
      if (field.type === 0) {
        const [alg] = children(field, 'hashAlgorithm');
        const [algId] = alg ? children(alg, 'hashAlgorithm') : [];
        const name = HASHES[oidOf(algId, 'hashAlgorithm')];
        if (!name) return undefined;
        hash = name;
      } else if (field.type === 1) {
        const [mgf] = children(field, 'maskGenAlgorithm');
        const [mgfId, mgfParams] = mgf ? children(mgf, 'maskGenAlgorithm') : [];
        if (oidOf(mgfId, 'maskGenAlgorithm') !== OID_MGF1 || !mgfParams) return undefined;
        const [mgfHashId] = children(mgfParams, 'MGF1 hash');
        const name = HASHES[oidOf(mgfHashId, 'MGF1 hash')];
        if (!name) return undefined;
        mgfHash = name;
      }
    }
  }
  const rank = (h: string): number =>
    ['MD2', 'MD5', 'SHA-1', 'SHA-224', 'SHA-256', 'SHA-384', 'SHA-512'].indexOf(h);
  return rank(hash) <= rank(mgfHash) ? hash : mgfHash;
}

/** BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL } */
function readBasicConstraints(der: string): X509Fields['basicConstraints'] {
  const value = decode(der, 'basicConstraints');
  let ca = false;
  let pathLength: number | undefined;
  for (const field of children(value, 'basicConstraints')) {
    if (isUniversal(field, T.BOOLEAN) && typeof field.value === 'string') ca = field.value !== '\x00';
    else if (isUniversal(field, T.INTEGER) && typeof field.value === 'string') {
      pathLength = readPathLength(field.value);
    } else throw bad('basicConstraints holds an unexpected field');
  }
  return { ca, pathLength };
}

function readPathLength(der: string): number {
  let value: number;
  try {
    value = asn1.derToInteger(der);
  } catch (e) {
    throw bad(`basicConstraints path length is too large (${(e as Error).message})`, e);
  }
  if (value < 0) throw bad(`basicConstraints path length ${value} is negative`);
  return value;
}

/** KeyUsage ::= BIT STRING; bit 0 is the most significant bit of the first byte after the count. */
function readKeyUsage(der: string): X509Fields['keyUsage'] {
  const value = decode(der, 'keyUsage');
  if (!isUniversal(value, T.BITSTRING) || typeof value.value !== 'string' || value.value.length < 1)
    throw bad('keyUsage is not a BIT STRING');
  const bits = value.value.slice(1);
  const byte = bits.charCodeAt(KEY_CERT_SIGN_BIT >> 3);
  return { keyCertSign: !Number.isNaN(byte) && (byte & (0x80 >> (KEY_CERT_SIGN_BIT & 7))) !== 0 };
}

function decode(der: string, what: string): Asn1 {
  try {
    return asn1.fromDer(der, { strict: true, parseAllBytes: true, decodeBitStrings: false });
  } catch (e) {
    throw bad(`${what} is not DER (${(e as Error).message})`, e);
  }
}

function children(node: Asn1, what: string): Asn1[] {
  if (!Array.isArray(node.value)) throw bad(`${what} is not a constructed value`);
  return node.value;
}

function oidOf(node: Asn1 | undefined, what: string): string {
  if (!node || !isUniversal(node, T.OID) || typeof node.value !== 'string')
    throw bad(`${what} has no OBJECT IDENTIFIER`);
  return asn1.derToOid(node.value);
}

function isUniversal(node: Asn1, type: number): boolean {
  return node.tagClass === UNIVERSAL && node.type === type;
}

/** forge reads "binary strings": one char per byte. (TextDecoder's latin1 is windows-1252.) */
function binaryString(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8192)
    out += String.fromCharCode(...bytes.subarray(i, Math.min(i + 8192, bytes.length)));
  return out;
}

function bad(why: string, cause?: unknown): ClgwError {
  return new ClgwError('CHAIN_INVALID', `certificate fields unreadable: ${why}`, { cause });
}
