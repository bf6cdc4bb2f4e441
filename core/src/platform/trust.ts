import tls from 'node:tls';

/** The part of Node's native secure context used here; not in Node's type declarations. */
interface NativeContext {
  addCACert?: (pem: string) => void;
}

/**
 * A TLS context trusting the built-in roots and `extraCa` (PEM) besides: a local mirror's CA.
 *
 * Passing `ca` to TLS replaces the root store, and giving it the roots back as
 * `[...tls.rootCertificates, extraCa]` parses all ~150 of them again into certificates of this
 * context's own — 2.3 MiB of the agent's memory, against 1.1 MiB for Node's shared root store
 * (measured with Node 20). So the context starts from the shared store and the extra CA is added to
 * it, as Node itself does for `ca`: the store is copied with the certificates it holds shared, not
 * parsed again. Where the native context lacks `addCACert` (a Node that renamed it), the roots are
 * given back as PEM as before.
 */
export function contextTrusting(extraCa: string): tls.SecureContext {
  const context = tls.createSecureContext();
  const native = (context as { context?: NativeContext }).context;
  if (typeof native?.addCACert !== 'function')
    return tls.createSecureContext({ ca: [...tls.rootCertificates, extraCa] });
  native.addCACert(extraCa);
  return context;
}
