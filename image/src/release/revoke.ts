import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import {
  MAX_REVOKED_SERIALS,
  normalizeSerial,
  REVOCATIONS_FORMAT,
  type RevocationList,
} from '@clgw/core/release/revocation.js';
import type { Compat } from '@clgw/core/release/schema.js';
import { republishCompat } from './build.js';
import type { DevKeys } from './keys.js';
import {
  listRootsPem,
  REVOCATIONS_FILE,
  readTreeRevocations,
  readTreeRotation,
  signRevocationList,
} from './sign.js';

export interface RevokeOptions {
  tree: string;
  /** The online keys (certificates and signing key): they re-sign compat.yaml. */
  keys: DevKeys;
  /** The release root's private key (offline): only it signs a revocation list. */
  rootKeyPem: string;
  /** Certificate serials to add, in hex (`7F:3A…`, `0x7f3a…` and leading zeros are accepted). */
  serials: string[];
  /** The new list's number; default the tree's current one + 1. Must exceed it. */
  number?: number;
  expiresInDays?: number;
  now?: number;
}

export interface Revoked {
  list: RevocationList;
  listPath: string;
  /** The republished compat.yaml, when the tree has one. */
  compat?: Compat;
  compatPath?: string;
}

/**
 * Revokes certificates: a new revocation list — the tree's current serials plus `serials` (a list
 * only grows), numbered above the current one — signed with the root's key and written to
 * `<tree>/revocations.json`, then compat.yaml published again with it in its envelope (next
 * serial). Refuses (CONFIG_INVALID) to revoke the certificates `keys` signs with: compat.yaml
 * could not be signed any more; a new signing certificate is put in place first.
 */
export async function revokeCertificates(options: RevokeOptions): Promise<Revoked> {
  const now = options.now ?? Date.now();
  const bad = (message: string, details: Record<string, unknown> = {}): ClgwError =>
    new ClgwError('INVALID_REQUEST', message, { details });
  if (options.serials.length === 0) throw bad('at least one serial to revoke is needed');
  const added = options.serials.map((text) => {
    const serial = normalizeSerial(text);
    if (!serial)
      throw bad(`serial ${JSON.stringify(text)} is not a certificate serial (1 to 40 hex digits, not zero)`, {
        serial: text,
      });
    return serial;
  });
  const current = await readTreeRevocations(
    options.tree,
    listRootsPem(await readTreeRotation(options.tree, options.keys.root.certPem), options.keys.root.certPem),
  );
  const number = options.number ?? (current?.list.number ?? 0) + 1;
  if (!Number.isSafeInteger(number) || number < 1)
    throw bad(`list number ${number} is not a whole number of at least 1`, { number });
  if (current && number <= current.list.number)
    throw bad(
      `list number ${number} does not exceed ${current.list.number}, the tree's current list: appliances keep the highest number they have seen and would ignore it`,
      { number, current: current.list.number },
    );
  const serials = [...new Set([...(current?.list.serials ?? []), ...added])].sort();
  if (serials.length > MAX_REVOKED_SERIALS)
    throw bad(`the list would hold ${serials.length} serials, more than the ${MAX_REVOKED_SERIALS} allowed`);
  for (const [role, pem] of [
    ['signing', options.keys.signing.certPem],
    ['intermediate', options.keys.intermediate.certPem],
  ] as const) {
    const serial = normalizeSerial(new X509Certificate(pem).serialNumber);
    if (serial && serials.includes(serial))
      throw new ClgwError(
        'CONFIG_INVALID',
        `serial ${serial} is the keys directory's own ${role} certificate: compat.yaml could not be signed with it any more; issue a new ${role} certificate into the keys directory first, then revoke the old one`,
        { details: { serial, role } },
      );
  }

  const list: RevocationList = {
    format: REVOCATIONS_FORMAT,
    number,
    issued: new Date(Math.floor(now / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
    serials,
  };
  const signed = signRevocationList(list, { certPem: options.keys.root.certPem, keyPem: options.rootKeyPem });
  const listPath = path.join(options.tree, REVOCATIONS_FILE);
  // The list first: whatever signs the tree from now on carries it, even if the republication
  // below fails.
  await writeJsonAtomic(listPath, signed);
  const republished = await republishCompat({
    tree: options.tree,
    keys: options.keys,
    now,
    ...(options.expiresInDays === undefined ? {} : { expiresInDays: options.expiresInDays }),
  });
  return { list, listPath, ...(republished ?? {}) };
}
