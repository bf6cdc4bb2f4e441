/**
 * The revocation list (core/release/revocation.ts), as the appliance meets it: in the envelope
 * (verifyCompatSignature), and stored on the data partition (agent/state/revocations.ts). Real
 * keys, real signatures, real files.
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@clgw/core/platform/log.js';
import {
  encodeRevocationList,
  MAX_REVOKED_SERIALS,
  normalizeSerial,
  parseRevocationList,
  REVOCATIONS_FORMAT,
  type RevocationList,
  type SignedRevocations,
  serialOf,
} from '@clgw/core/release/revocation.js';
import { envelopeRevocations, verifyCompatSignature } from '@clgw/core/release/signature.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptRevocations, readStoredRevocations } from '../../../agent/src/state/revocations.js';
import { type DevKeys, generateDevKeys, issueSigningCert } from '../../../image/src/release/keys.js';
import { signDocument, signRevocationList } from '../../../image/src/release/sign.js';
import { SAMPLE_YAML } from '../../fixtures/release/compat.js';
import { rejected, thrown } from '../../support/errors.js';

const document = new TextEncoder().encode(SAMPLE_YAML);
const NOW = Date.now();

let keys: DevKeys;
let leafSerial: string;
let interSerial: string;
let dir: string;

beforeAll(async () => {
  keys = generateDevKeys({ bits: 2048 });
  leafSerial = serialOf(new X509Certificate(keys.signing.certPem));
  interSerial = serialOf(new X509Certificate(keys.intermediate.certPem));
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-revocation-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function list(number: number, serials: string[]): RevocationList {
  return { format: REVOCATIONS_FORMAT, number, issued: '2026-11-20T10:00:00Z', serials };
}
const signed = (l: RevocationList): SignedRevocations => signRevocationList(l, keys.root);
const envelopeWith = (revocations?: SignedRevocations, k: DevKeys = keys): Buffer =>
  signDocument(document, k, revocations ? { revocations } : {});

function verify(envelope: Buffer, stored?: ReturnType<typeof envelopeRevocations>) {
  return verifyCompatSignature({
    document,
    envelope,
    trustedRootsPem: keys.root.certPem,
    now: NOW,
    ...(stored ? { revocations: stored } : {}),
  });
}

describe('parseRevocationList: strict, canonical, bounded', () => {
  it('reads back what encodeRevocationList writes (serials sorted, repeats dropped)', () => {
    const bytes = encodeRevocationList(list(3, ['b2', 'a1', 'b2']));
    expect(bytes.toString()).toBe(
      '{"format":"clgw-revocations-v1","number":3,"issued":"2026-11-20T10:00:00Z","serials":["a1","b2"]}',
    );
    expect(parseRevocationList(bytes, 'the list')).toEqual(list(3, ['a1', 'b2']));
  });

  it.each([
    ['not canonical (whitespace)', JSON.stringify(list(1, ['a1']), null, 2), /canonical form/],
    [
      'keys in another order',
      '{"number":1,"format":"clgw-revocations-v1","issued":"2026-11-20T10:00:00Z","serials":[]}',
      /canonical form/,
    ],
    [
      'duplicate key',
      '{"format":"clgw-revocations-v1","number":1,"number":2,"issued":"2026-11-20T10:00:00Z","serials":[]}',
      /canonical form/,
    ],
    ['unknown key', JSON.stringify({ ...list(1, []), extra: 1 }), /unknown keys extra/],
    ['wrong format', JSON.stringify({ ...list(1, []), format: 'clgw-revocations-v2' }), /^.*format/],
    ['number 0', JSON.stringify(list(0, [])), /number/],
    ['number 1.5', JSON.stringify(list(1.5, [])), /number/],
    ['issued not UTC', JSON.stringify({ ...list(1, []), issued: '2026-11-20T10:00:00+01:00' }), /issued/],
    ['uppercase serial', JSON.stringify(list(1, ['A1'])), /serials\.0: expected a certificate serial/],
    ['serial with a leading zero', JSON.stringify(list(1, ['0a1'])), /serials\.0/],
    ['serial of 41 digits', JSON.stringify(list(1, ['1'.repeat(41)])), /serials\.0/],
    ['serials out of order', JSON.stringify(list(1, ['b2', 'a1'])), /ascending order without repeats/],
    ['repeated serial', JSON.stringify(list(1, ['a1', 'a1'])), /ascending order without repeats/],
    [
      'too many serials',
      JSON.stringify(
        list(
          1,
          Array.from({ length: MAX_REVOKED_SERIALS + 1 }, (_, i) => (i + 1).toString(16)),
        ),
      ),
      /at most 256 serials/,
    ],
    ['more than 16 KiB', ' '.repeat(16 * 1024 + 1), /16384 allowed/],
    ['not JSON', 'revoked: a1', /not UTF-8 JSON/],
  ])('refuses %s', (_what, text, why) => {
    const e = thrown(() => parseRevocationList(Buffer.from(text), 'the list'));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(/^the list is malformed: /);
    expect(e.message).toMatch(why);
  });

  it('normalizeSerial takes the forms tools print', () => {
    expect(normalizeSerial('7F:3A:01')).toBe('7f3a01');
    expect(normalizeSerial('0x007f3a')).toBe('7f3a');
    expect(normalizeSerial('00')).toBeUndefined();
    expect(normalizeSerial('xyz')).toBeUndefined();
  });
});

describe('the list in the envelope', () => {
  it('a list signed by the root is carried and verified; a chain not on it is accepted', () => {
    const envelope = envelopeWith(signed(list(1, ['abc123'])));
    expect(envelopeRevocations(envelope, keys.root.certPem)?.list.number).toBe(1);
    expect(verify(envelope).revocationList).toBe(1);
  });

  it.each([
    ['the signing key', () => keys.signing],
    ['the intermediate key', () => keys.intermediate],
    ['another root', () => generateDevKeys({ bits: 2048 }).root],
  ])('a list signed by %s refuses the whole document (SIGNATURE_INVALID naming the list)', (_w, signer) => {
    const s = signer();
    // Signed as the root would, with the wrong key: the tool refuses that itself, so sign by hand.
    const forged = signRevocationList(list(1, []), { certPem: s.certPem, keyPem: s.keyPem! });
    const e = thrown(() => verify(envelopeWith(forged)));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(
      /^the revocation list in compat\.yaml\.sig: its signature does not verify with the key of a pinned root/,
    );
  });

  it('a list altered after signing refuses the document', () => {
    const good = signed(list(1, ['abc123']));
    const altered = { ...good, list: encodeRevocationList(list(1, [])).toString('base64') };
    expect(thrown(() => verify(envelopeWith(altered))).code).toBe('SIGNATURE_INVALID');
  });

  it('a revoked signing certificate: CERT_REVOKED naming the serial and subject', () => {
    const e = thrown(() => verify(envelopeWithUnchecked(signed(list(2, [leafSerial])))));
    expect(e.code).toBe('CERT_REVOKED');
    expect(e.message).toBe(
      `compat.yaml.sig: signing certificate "O=clgw development, CN=clgw development release signing" (chain[0]) is revoked: its serial ${leafSerial} is on revocation list 2 (issued 2026-11-20T10:00:00Z)`,
    );
    expect(e.details).toMatchObject({ serial: leafSerial, index: 0, listNumber: 2 });
  });

  it('a revoked intermediate: CERT_REVOKED naming it', () => {
    const e = thrown(() => verify(envelopeWithUnchecked(signed(list(1, [interSerial])))));
    expect(e.code).toBe('CERT_REVOKED');
    expect(e.message).toContain(
      `intermediate certificate "O=clgw development, CN=clgw development release intermediate" (chain[1])`,
    );
    expect(e.details).toMatchObject({ serial: interSerial, index: 1 });
  });

  it('the stored list applies to an envelope without a list (replay)', () => {
    const stored = envelopeRevocations(
      envelopeWithUnchecked(signed(list(4, [leafSerial]))),
      keys.root.certPem,
    );
    expect(stored?.list.number).toBe(4);
    expect(verify(envelopeWith()).signer).toMatch(/release signing/);
    expect(thrown(() => verify(envelopeWith(), stored)).code).toBe('CERT_REVOKED');
    // An older list in the envelope does not lift the stored one either.
    expect(thrown(() => verify(envelopeWith(signed(list(3, []))), stored)).code).toBe('CERT_REVOKED');
  });

  it('the release tool refuses to sign with a certificate its list revokes', () => {
    const e = thrown(() => envelopeWith(signed(list(1, [leafSerial]))));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain(`(serial ${leafSerial}) is on revocation list 1`);
  });

  it('a new signing certificate under the same intermediate is accepted with the old one revoked', () => {
    const fresh = { ...keys, signing: issueSigningCert(keys.intermediate, { bits: 2048 }) };
    const result = verify(envelopeWith(signed(list(5, [leafSerial])), fresh));
    expect(result.revocationList).toBe(5);
    expect(result.chain).toHaveLength(3);
  });
});

/** An envelope signed with the current keys whatever the list says (what an attacker holding the leaked key makes). */
function envelopeWithUnchecked(revocations: SignedRevocations): Buffer {
  const envelope = JSON.parse(signDocument(document, keys).toString()) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...envelope, revocations }));
}

describe('the stored list (agent/state/revocations.ts)', () => {
  const log = memoryLogger();

  it('a higher number is adopted and stored; a lower or equal one ignored; none keeps the stored one', async () => {
    const file = path.join(dir, 'adopt.json');
    const offer = (n: number, serials: string[]) =>
      envelopeRevocations(envelopeWithUnchecked(signed(list(n, serials))), keys.root.certPem);

    expect(await adoptRevocations({ log }, file, keys.root.certPem, undefined)).toBeUndefined();
    await expect(fs.access(file)).rejects.toThrow();

    expect((await adoptRevocations({ log }, file, keys.root.certPem, offer(2, ['a1'])))?.list.number).toBe(2);
    expect((await readStoredRevocations(file, keys.root.certPem))?.list).toEqual(list(2, ['a1']));
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        msg: 'revocation list adopted',
        fields: expect.objectContaining({ number: 2 }),
      }),
    );

    const before = await fs.readFile(file);
    for (const older of [offer(1, []), offer(2, ['b2']), undefined]) {
      const effective = await adoptRevocations({ log }, file, keys.root.certPem, older);
      expect(effective?.list).toEqual(list(2, ['a1']));
    }
    expect(await fs.readFile(file)).toEqual(before);

    expect((await adoptRevocations({ log }, file, keys.root.certPem, offer(7, ['a1', 'c3'])))?.list).toEqual(
      list(7, ['a1', 'c3']),
    );
    expect((await readStoredRevocations(file, keys.root.certPem))?.list.number).toBe(7);
  });

  it.each([
    ['not JSON', () => 'garbage', /is not UTF-8 JSON/],
    ['malformed', () => '{"list":"AAAA"}', /is malformed \(signature:/],
    [
      'signed by another key',
      () =>
        JSON.stringify(
          signRevocationList(list(9, []), { certPem: keys.signing.certPem, keyPem: keys.signing.keyPem }),
        ),
      /does not verify \(the list: its signature does not verify/,
    ],
  ])('a stored file %s refuses (never forgets a revocation silently)', async (_what, content, why) => {
    const file = path.join(dir, `bad-${_what.replace(/ /g, '-')}.json`);
    await fs.writeFile(file, content());
    const e = await rejected(adoptRevocations({ log }, file, keys.root.certPem, undefined));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(new RegExp(`^the stored revocation list ${file.replace(/[.]/g, '\\.')} `));
    expect(e.message).toMatch(why);
    expect(e.details).toEqual({ file });
  });
});
