import { constants, createPrivateKey, sign, verify, X509Certificate } from 'node:crypto';
import { ClgwError } from '@clgw/core/errors.js';
import {
  SIGNATURE_ALGORITHM,
  SIGNATURE_FORMAT,
  type SignatureEnvelope,
} from '@clgw/core/release/signature.js';
import type { DevKeys } from './keys.js';

export interface SignOptions {
  /** Extra PEM certificates appended to the embedded chain (after signing + intermediate). */
  chain?: string[];
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
  const envelope: SignatureEnvelope = {
    format: SIGNATURE_FORMAT,
    algorithm: SIGNATURE_ALGORITHM,
    signature: signature.toString('base64'),
    chain: [keys.signing.certPem, keys.intermediate.certPem, ...(options.chain ?? [])].map(normalizePem),
  };
  return Buffer.from(`${JSON.stringify(envelope, null, 2)}\n`);
}

/** One certificate, `\n` line ends, one trailing newline — the form the envelope schema accepts. */
function normalizePem(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trim()}\n`;
}
