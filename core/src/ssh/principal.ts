/**
 * Who may log in over SSH, decided from an OpenSSH user certificate (PROTOCOL.certkeys): the
 * appliance's identity, the principal a support certificate must name to be accepted here, and
 * the rules `AuthorizedPrincipalsCommand` applies. Pure: no I/O, so every refusal is unit-tested.
 */

/** Lowercase base32 without i, l, o and u (Crockford's letters): nothing to confuse when read aloud. */
export const APPLIANCE_ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** 12 characters: 60 random bits, short enough to read off the screen and type. */
export const APPLIANCE_ID_LENGTH = 12;
const ID_PATTERN = new RegExp(`^[${APPLIANCE_ID_ALPHABET}]{${APPLIANCE_ID_LENGTH}}$`);

/** The role every support certificate names (`clgw-release support-cert` always adds it). */
export const SUPPORT_ROLE_PRINCIPAL = 'clgw-support';
/** The SSH window (SPEC §4); a certificate may not be valid for longer. */
export const SUPPORT_CERT_MAX_HOURS = 24;
/**
 * Added to the 24 hours a certificate may span: `clgw-release support-cert` back-dates the start
 * by 5 minutes (a support PC's clock a little ahead of the appliance's), ssh-keygen rounds too.
 */
export const SUPPORT_CERT_SLACK_SECONDS = 10 * 60;

/** A new appliance ID from `random` bytes (one per character; 256 is a multiple of 32, so unbiased). */
export function applianceIdFrom(random: Uint8Array): string {
  if (random.length < APPLIANCE_ID_LENGTH)
    throw new RangeError(`an appliance ID needs ${APPLIANCE_ID_LENGTH} random bytes, got ${random.length}`);
  let id = '';
  for (let i = 0; i < APPLIANCE_ID_LENGTH; i++) id += APPLIANCE_ID_ALPHABET[random[i]! % 32];
  return id;
}

export function isApplianceId(text: string): boolean {
  return ID_PATTERN.test(text);
}

/** The principal a support certificate must name to be accepted on the appliance `id`. */
export function appliancePrincipal(id: string): string {
  return `appliance-${id}`;
}

/** The fields of an OpenSSH certificate the decision needs (the signature is sshd's to check). */
export interface SshCertificate {
  /** The certificate's key type, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  keyType: string;
  serial: bigint;
  /** 1 user, 2 host. */
  certType: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch; `validBefore` 2^64-1 is "forever". */
  validAfter: bigint;
  validBefore: bigint;
}

/** How many length-prefixed key fields follow the nonce, by certificate type (PROTOCOL.certkeys). */
const KEY_FIELDS: Record<string, number> = {
  'ssh-rsa-cert-v01@openssh.com': 2,
  'ssh-dss-cert-v01@openssh.com': 4,
  'ecdsa-sha2-nistp256-cert-v01@openssh.com': 2,
  'ecdsa-sha2-nistp384-cert-v01@openssh.com': 2,
  'ecdsa-sha2-nistp521-cert-v01@openssh.com': 2,
  'ssh-ed25519-cert-v01@openssh.com': 1,
  'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com': 3,
  'sk-ssh-ed25519-cert-v01@openssh.com': 2,
};

/** Certificates are a few hundred bytes (an RSA 16384 one under 5 KiB); anything far larger is not one. */
const MAX_CERT_BYTES = 64 * 1024;

class Reader {
  private at = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): void {
    if (this.at + n > this.bytes.length) throw new Error('the certificate is truncated');
  }
  uint32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at);
    this.at += 4;
    return v;
  }
  uint64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.at);
    this.at += 8;
    return v;
  }
  bytesField(): Uint8Array {
    const n = this.uint32();
    this.need(n);
    const v = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  text(): string {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytesField());
  }
  get done(): boolean {
    return this.at === this.bytes.length;
  }
}

/** Parses a certificate blob (what sshd passes base64-encoded as `%k`); throws on anything else. */
export function parseSshCertificate(blob: Uint8Array): SshCertificate {
  if (blob.length > MAX_CERT_BYTES) throw new Error(`the certificate is over ${MAX_CERT_BYTES} bytes`);
  const r = new Reader(blob);
  const keyType = r.text();
  const fields = KEY_FIELDS[keyType];
  if (fields === undefined) throw new Error(`"${keyType.slice(0, 64)}" is not an OpenSSH certificate type`);
  r.bytesField(); // nonce
  for (let i = 0; i < fields; i++) r.bytesField();
  const serial = r.uint64();
  const certType = r.uint32();
  const keyId = r.text();
  const list = new Reader(r.bytesField());
  const principals: string[] = [];
  while (!list.done) principals.push(list.text());
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  for (const _ of ['critical options', 'extensions', 'reserved', 'signature key', 'signature'])
    r.bytesField();
  if (!r.done) throw new Error('the certificate has trailing bytes');
  return { keyType, serial, certType, keyId, principals, validAfter, validBefore };
}

export interface PrincipalRequest {
  /** `%u`: the account being logged in to. */
  user: string;
  /** The one account support may use (`ssh.account`, `support`). */
  account: string;
  /** This appliance's ID (`var/clgw/appliance-id`); absent: nobody is let in. */
  applianceId: string | undefined;
  /** `%t`: the offered key's type. */
  keyType: string;
  /** `%k` decoded. */
  blob: Uint8Array;
}

export type PrincipalDecision = { accept: true; principal: string } | { accept: false; reason: string };

/**
 * What `AuthorizedPrincipalsCommand` prints: this appliance's principal — which sshd then
 * requires in the certificate — only for a user certificate that names both the support role and
 * this appliance and is valid for no longer than the SSH window. sshd has already checked the
 * CA's signature (TrustedUserCAKeys); the current validity and the principal it checks again.
 */
export function decidePrincipal(req: PrincipalRequest): PrincipalDecision {
  const no = (reason: string): PrincipalDecision => ({ accept: false, reason });
  if (req.user !== req.account) return no(`user ${req.user} is not ${req.account}`);
  if (!req.applianceId || !isApplianceId(req.applianceId)) return no('this appliance has no ID yet');
  if (!req.keyType.endsWith('-cert-v01@openssh.com')) return no(`a plain ${req.keyType} key, no certificate`);
  let cert: SshCertificate;
  try {
    cert = parseSshCertificate(req.blob);
  } catch (e) {
    return no((e as Error).message);
  }
  if (cert.certType !== 1) return no('not a user certificate');
  const principal = appliancePrincipal(req.applianceId);
  if (!cert.principals.includes(principal)) return no(`the certificate does not name ${principal}`);
  // The role keeps a certificate the same CA issued for another purpose (naming this appliance)
  // from opening a support session.
  if (!cert.principals.includes(SUPPORT_ROLE_PRINCIPAL))
    return no(`the certificate does not name ${SUPPORT_ROLE_PRINCIPAL}`);
  const span = cert.validBefore - cert.validAfter;
  const max = BigInt(SUPPORT_CERT_MAX_HOURS * 3600 + SUPPORT_CERT_SLACK_SECONDS);
  if (cert.validBefore < cert.validAfter || span > max)
    return no(`the certificate is valid for ${describeSpan(span)}, more than ${SUPPORT_CERT_MAX_HOURS} h`);
  return { accept: true, principal };
}

function describeSpan(seconds: bigint): string {
  if (seconds > 10n ** 12n) return 'ever';
  const minutes = Number(seconds / 60n);
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
