/**
 * Root rotation (core/release/root-rotation.ts): the old root's statement vouching for a new root,
 * as the appliance meets it in the envelope (verifyCompatSignature) and on the data partition
 * (agent/state/root-rotation.ts), and as `clgw-release rotate-root` makes it. Real keys, real
 * signatures, real files; `now` is injected.
 */
import { constants, createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@clgw/core/platform/log.js';
import { REVOCATIONS_FORMAT, type RevocationList } from '@clgw/core/release/revocation.js';
import {
  certDigest,
  encodeRotationStatement,
  parseRotationStatement,
  ROOT_ROTATION_FORMAT,
  type SignedRotation,
  trustAt,
  verifyRootRotation,
} from '@clgw/core/release/root-rotation.js';
import {
  envelopeRevocations,
  envelopeRotation,
  parseTrustedRoots,
  verifyCompatSignature,
} from '@clgw/core/release/signature.js';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptRotation, readStoredRotation } from '../../../agent/src/state/root-rotation.js';
import {
  type DevKeys,
  generateDevKeys,
  generateRootCa,
  issueIntermediate,
  issueSigningCert,
} from '../../../image/src/release/keys.js';
import { rotateRoot } from '../../../image/src/release/rotate.js';
import {
  listRootsPem,
  ROOT_ROTATION_FILE,
  readTreeRevocations,
  readTreeRotation,
  signDocument,
  signRevocationList,
  signRootRotation,
} from '../../../image/src/release/sign.js';
import { SAMPLE_YAML } from '../../fixtures/release/compat.js';
import { rejected, thrown } from '../../support/errors.js';

const document = new TextEncoder().encode(SAMPLE_YAML);
const NOW = Date.now();
const OVERLAP_UNTIL = new Date(NOW + 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const DURING = NOW;
const AFTER = NOW + 2 * 3600_000;

let old: DevKeys;
let newRoot: { certPem: string; keyPem: string };
/** Keys whose chain ends at the new root (new intermediate and signing certificate). */
let underNew: DevKeys;
let rotation: SignedRotation;
let dir: string;

beforeAll(async () => {
  old = generateDevKeys({ bits: 2048 });
  newRoot = generateRootCa({ bits: 2048 });
  const intermediate = issueIntermediate(newRoot, { bits: 2048 });
  underNew = {
    root: { certPem: newRoot.certPem },
    intermediate,
    signing: issueSigningCert(intermediate, { bits: 2048 }),
  };
  rotation = signRootRotation(newRoot.certPem, old.root, OVERLAP_UNTIL).signed;
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-rotation-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const roots = () => parseTrustedRoots(old.root.certPem);

/** A self-signed certificate that is not a CA. */
function selfSignedLeaf(): string {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '0a1b2c';
  cert.validity.notBefore = new Date(NOW - 3600_000);
  cert.validity.notAfter = new Date(NOW + 365 * 86400_000);
  const subject = [{ name: 'commonName', value: 'not a CA' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A rotation statement for `certPem` signed with `keyPem`, without signRootRotation's checks. */
function vouchedBy(keyPem: string, certPem: string): SignedRotation {
  const bytes = encodeRotationStatement({
    format: ROOT_ROTATION_FORMAT,
    newRoot: certDigest(new X509Certificate(certPem)),
    overlapUntil: OVERLAP_UNTIL,
  });
  const signature = sign('sha256', bytes, {
    key: createPrivateKey(keyPem),
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
  });
  return {
    cert: certPem.replace(/\r\n/g, '\n'),
    statement: bytes.toString('base64'),
    signature: signature.toString('base64'),
  };
}

describe('verifyRootRotation', () => {
  it('accepts a new root vouched for by the pinned root, naming the signer and the overlap', () => {
    const v = verifyRootRotation(rotation, roots(), NOW, 'the rotation');
    expect(v.oldRoot.subject).toContain('release root');
    expect(v.newRoot.fingerprint256).not.toBe(v.oldRoot.fingerprint256);
    expect(v.overlapUntil).toBe(Date.parse(OVERLAP_UNTIL));
  });

  it('refuses a statement signed by a key that is not a pinned root (the intermediate)', () => {
    const byIntermediate = signRootRotation(newRoot.certPem, old.intermediate, OVERLAP_UNTIL).signed;
    const e = thrown(() => verifyRootRotation(byIntermediate, roots(), NOW, 'the rotation'));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(
      /the rotation does not verify: its statement is not signed by the key of a pinned root/,
    );
  });

  it('refuses a certificate other than the one the statement names (other key or subject)', () => {
    const other = generateRootCa({ bits: 2048, organization: 'someone else' });
    const swapped = { ...rotation, cert: other.certPem };
    const e = thrown(() => verifyRootRotation(swapped, roots(), NOW, 'the rotation'));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(/has SHA-256 [0-9a-f]{64}, but the statement names/);
  });

  it('refuses a new root that is not a CA, or not self-signed', () => {
    const leaf = vouchedBy(old.root.keyPem!, selfSignedLeaf());
    const e = thrown(() => verifyRootRotation(leaf, roots(), NOW, 'the rotation'));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(/new root "CN=not a CA" is not a CA certificate/);
    // signRootRotation checks its own output, so it will not make one either.
    expect(() => signRootRotation(selfSignedLeaf(), old.root, OVERLAP_UNTIL)).toThrow(/is not a CA/);
    const notSelfSigned = vouchedBy(old.root.keyPem!, old.intermediate.certPem);
    expect(() => verifyRootRotation(notSelfSigned, roots(), NOW, 'x')).toThrow(/is not self-signed/);
  });

  it('refuses an overlap changed after signing (the signature covers it)', () => {
    const statement = parseRotationStatement(Buffer.from(rotation.statement, 'base64'), 'x');
    const later = encodeRotationStatement({ ...statement, overlapUntil: '2099-01-01T00:00:00Z' });
    const e = thrown(() =>
      verifyRootRotation({ ...rotation, statement: later.toString('base64') }, roots(), NOW, 'the rotation'),
    );
    expect(e.code).toBe('SIGNATURE_INVALID');
  });

  it('refuses a non-canonical statement and unknown keys', () => {
    expect(() =>
      parseRotationStatement(
        Buffer.from(
          JSON.stringify({
            newRoot: 'a'.repeat(64),
            format: ROOT_ROTATION_FORMAT,
            overlapUntil: OVERLAP_UNTIL,
          }),
        ),
        'x',
      ),
    ).toThrow(/canonical/);
    expect(() => verifyRootRotation({ ...rotation, extra: 1 } as SignedRotation, roots(), NOW, 'x')).toThrow(
      /unknown keys extra/,
    );
  });
});

describe('trustAt', () => {
  it('trusts both roots until the overlap ends, then only the new one; lists stay verifiable by both', () => {
    const v = verifyRootRotation(rotation, roots(), NOW, 'x');
    const during = trustAt(roots(), v, DURING);
    expect(during.chainRoots.map((r) => r.fingerprint256)).toEqual([
      v.oldRoot.fingerprint256,
      v.newRoot.fingerprint256,
    ]);
    expect(during.retired).toEqual([]);
    const after = trustAt(roots(), v, AFTER);
    expect(after.chainRoots.map((r) => r.fingerprint256)).toEqual([v.newRoot.fingerprint256]);
    expect(after.retired.map((r) => r.root.fingerprint256)).toEqual([v.oldRoot.fingerprint256]);
    expect(after.listRoots).toHaveLength(2);
    expect(trustAt(roots(), undefined, AFTER).chainRoots).toHaveLength(1);
  });
});

describe('verifyCompatSignature with a rotation', () => {
  const verify = (envelope: Buffer, now: number) =>
    verifyCompatSignature({ document, envelope, trustedRootsPem: old.root.certPem, now });

  it('accepts a chain to the new root during and after the overlap', () => {
    const envelope = signDocument(document, underNew, { rootRotation: rotation });
    expect(verify(envelope, DURING).chain.at(-1)).toContain('release root');
    expect(verify(envelope, AFTER).signer).toContain('release signing');
  });

  it('accepts a chain to the old root during the overlap and refuses it after, saying why', () => {
    const envelope = signDocument(document, old, { rootRotation: rotation });
    expect(verify(envelope, DURING).signer).toContain('release signing');
    const e = thrown(() => verify(envelope, AFTER));
    expect(e.code).toBe('CHAIN_INVALID');
    expect(e.message).toMatch(/ends at the old release root .* whose overlap ended at /);
  });

  it('holds an envelope replayed without the rotation to the stored one', () => {
    const stored = verifyRootRotation(rotation, roots(), NOW, 'x');
    const bare = signDocument(document, old);
    expect(() =>
      verifyCompatSignature({
        document,
        envelope: bare,
        trustedRootsPem: old.root.certPem,
        now: AFTER,
        rotation: stored,
      }),
    ).toThrow(/overlap ended/);
    // Without any rotation, a chain to the new root leads to no pinned root.
    expect(() => verify(signDocument(document, underNew), DURING)).toThrow(/was not issued by a pinned root/);
  });

  it('refuses the document when the rotation does not verify', () => {
    const forged = signRootRotation(newRoot.certPem, old.intermediate, OVERLAP_UNTIL).signed;
    const e = thrown(() => verify(signDocument(document, old, { rootRotation: forged }), DURING));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toMatch(/the root rotation in compat.yaml.sig does not verify/);
  });

  it('ignores a rotation to a root the image already pins', () => {
    const both = `${old.root.certPem}${newRoot.certPem}`;
    expect(
      envelopeRotation(signDocument(document, old, { rootRotation: rotation }), both, NOW),
    ).toBeUndefined();
  });

  it('keeps verifying a revocation list signed by the old root after the overlap, and one by the new root', () => {
    const list = {
      format: REVOCATIONS_FORMAT,
      number: 1,
      issued: '2026-11-20T10:00:00Z',
      serials: ['7f'],
    } as const;
    const byOld = signRevocationList({ ...list, serials: ['7f'] }, old.root);
    const byNew = signRevocationList({ ...list, serials: ['7f'] }, newRoot);
    for (const revocations of [byOld, byNew]) {
      const envelope = signDocument(document, underNew, { rootRotation: rotation, revocations });
      expect(verify(envelope, AFTER).revocationList).toBe(1);
    }
    const v = verifyRootRotation(rotation, roots(), NOW, 'x');
    const envelope = signDocument(document, underNew, { revocations: byNew });
    expect(envelopeRevocations(envelope, old.root.certPem, undefined, v)?.list.number).toBe(1);
    expect(() => envelopeRevocations(envelope, old.root.certPem)).toThrow(/signature does not verify/);
  });
});

describe('the stored rotation (agent/state/root-rotation.ts)', () => {
  it('is written before it is used, logged, and verified again on reading', async () => {
    const file = path.join(dir, 'adopt', 'root-rotation.json');
    await fs.mkdir(path.dirname(file), { recursive: true });
    const log = memoryLogger();
    const offered = envelopeRotation(
      signDocument(document, old, { rootRotation: rotation }),
      old.root.certPem,
      NOW,
    );
    const adopted = await adoptRotation({ log }, file, old.root.certPem, offered, NOW);
    expect(adopted?.statement.overlapUntil).toBe(OVERLAP_UNTIL);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual(rotation);
    expect(log.lines.some((r) => r.msg === 'release root rotation adopted')).toBe(true);
    // Stored: an envelope without it still gets it; after the overlap it still verifies (the bridge).
    expect(
      (await adoptRotation({ log }, file, old.root.certPem, undefined, AFTER))?.newRoot.fingerprint256,
    ).toBe(adopted?.newRoot.fingerprint256);
  });

  it('refuses updates, naming the file, when the stored rotation is corrupt or does not verify', async () => {
    const file = path.join(dir, 'corrupt.json');
    await fs.writeFile(file, '{"cert": 1}');
    const e = await rejected(readStoredRotation(file, old.root.certPem, NOW));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toContain(file);
    const forged = signRootRotation(newRoot.certPem, old.intermediate, OVERLAP_UNTIL).signed;
    await fs.writeFile(file, JSON.stringify(forged));
    expect((await rejected(readStoredRotation(file, old.root.certPem, NOW))).message).toMatch(
      /does not verify/,
    );
    expect(await readStoredRotation(path.join(dir, 'absent.json'), old.root.certPem, NOW)).toBeUndefined();
  });
});

describe('clgw-release rotate-root (image/src/release/rotate.ts)', () => {
  it('writes the new root offline, the rotation into the tree, and refuses a second rotation', async () => {
    const tree = path.join(dir, 'tree');
    const out = path.join(dir, 'new-root');
    await fs.mkdir(tree, { recursive: true });
    const rotated = await rotateRoot({
      tree,
      keys: old,
      rootKeyPem: old.root.keyPem!,
      newRootOut: out,
      overlapDays: 30,
      bits: 2048,
      now: NOW,
    });
    expect(rotated.compat).toBeUndefined();
    expect((await fs.stat(rotated.newRootKeyPath)).mode & 0o777).toBe(0o600);
    const { previousRoot, ...signed } = JSON.parse(
      await fs.readFile(path.join(tree, ROOT_ROTATION_FILE), 'utf8'),
    ) as SignedRotation & { previousRoot: string };
    expect(new X509Certificate(previousRoot).fingerprint256).toBe(roots()[0]!.fingerprint256);
    const v = verifyRootRotation(signed, roots(), NOW, 'x');
    expect(v.newRoot.fingerprint256).toBe(
      new X509Certificate(await fs.readFile(rotated.newRootCertPath)).fingerprint256,
    );
    expect(v.overlapUntil - NOW).toBeGreaterThan(29 * 86400_000);
    await expect(
      rotateRoot({
        tree,
        keys: old,
        rootKeyPem: old.root.keyPem!,
        newRootOut: path.join(dir, 'x'),
        bits: 2048,
      }),
    ).rejects.toThrow(/already holds a root rotation/);

    // Once the keys directory holds the new root, the tools still read the rotation and a list the
    // old root signed (as appliances accept it); a keys directory of a third root is refused.
    const list: RevocationList = {
      format: REVOCATIONS_FORMAT,
      number: 1,
      issued: '2026-11-20T10:00:00Z',
      serials: ['7f'],
    };
    await fs.writeFile(
      path.join(tree, 'revocations.json'),
      JSON.stringify(signRevocationList(list, old.root)),
    );
    const newPem = await fs.readFile(rotated.newRootCertPath, 'utf8');
    expect((await readTreeRotation(tree, newPem))?.signed).toEqual(signed);
    expect(
      (await readTreeRevocations(tree, listRootsPem(await readTreeRotation(tree, newPem), newPem)))?.list
        .number,
    ).toBe(1);
    await expect(readTreeRotation(tree, generateRootCa({ bits: 2048 }).certPem)).rejects.toThrow(
      /neither the rotation's old root nor its new one/,
    );
  });
});
