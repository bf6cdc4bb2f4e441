/**
 * Certificates for TLS tests, from the mirror's throw-away PKI: an untrusted server certificate
 * (issued by another CA, or self-signed) for the "untrusted TLS certificate" test.
 */
import {
  createCa,
  issueServerCert,
  type KeyCert,
  MIRROR_NAMES,
  selfSignedServerCert,
} from '../../scripts/lib/mirror-pki.js';

export { createCa, issueServerCert, type KeyCert, MIRROR_NAMES, selfSignedServerCert };

/**
 * A server certificate for the mirror's names that the mirror's CA did not issue: by default from a
 * fresh, unrelated CA (clients see "unable to verify the first certificate"); or self-signed.
 */
export function untrustedServerCert(
  kind: 'other-ca' | 'self-signed' = 'other-ca',
  names = MIRROR_NAMES,
): KeyCert {
  if (kind === 'self-signed') return selfSignedServerCert(names);
  return issueServerCert(createCa('clgw untrusted test CA'), names);
}
