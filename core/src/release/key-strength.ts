import type { X509Certificate } from 'node:crypto';

/**
 * The key-strength rule shared by the release chain (signature.ts) and root rotation
 * (root-rotation.ts): one rule, so a new root is held to what its chains will be held to.
 */

const MIN_RSA_BITS = 2048;
/** Node's names for NIST P-256, P-384 and P-521. */
const EC_CURVES = ['prime256v1', 'secp384r1', 'secp521r1'];

/**
 * Why `cert`'s public key is too weak to take part in a release chain, or undefined: RSA of at
 * least 2048 bits, EC on P-256, P-384 or P-521, Ed25519 or Ed448.
 */
export function keyProblem(cert: X509Certificate): string | undefined {
  const key = cert.publicKey;
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= MIN_RSA_BITS
      ? undefined
      : `uses a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`;
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? 'an unnamed curve';
    return EC_CURVES.includes(curve)
      ? undefined
      : `uses an EC key on ${curve}; P-256, P-384 or P-521 is required`;
  }
  if (type === 'ed25519' || type === 'ed448') return undefined;
  return `uses a key of type ${type ?? 'unknown'}; RSA (${MIN_RSA_BITS} bits or more), EC P-256/P-384/P-521, Ed25519 or Ed448 is required`;
}
