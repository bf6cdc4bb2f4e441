/**
 * node-forge's DER decoder alone. @types/node-forge types only the package index, which loads all
 * of forge (TLS, PKCS#12, ciphers …) into the agent's memory (issue #8); this module loads asn1,
 * util and oids. Only the members the agent calls are declared.
 */
declare module 'node-forge/lib/asn1.js' {
  /** One decoded value: its children when constructed, else its content octets as a binary string. */
  export interface Asn1 {
    tagClass: number;
    type: number;
    constructed: boolean;
    value: string | Asn1[];
  }
  export interface FromDerOptions {
    strict?: boolean;
    parseAllBytes?: boolean;
    decodeBitStrings?: boolean;
    maxDepth?: number;
  }
  const asn1: {
    fromDer(bytes: string, options?: FromDerOptions): Asn1;
    /** Dotted form of an OBJECT IDENTIFIER's content octets. */
    derToOid(bytes: string): string;
    /** Signed value of an INTEGER's content octets; throws above 32 bits. */
    derToInteger(bytes: string): number;
  };
  export default asn1;
}
