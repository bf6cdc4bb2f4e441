import type { ClgwError } from '@clgw/core/errors.js';
import {
  MAX_ENVELOPE_BYTES,
  type VerifyCompatSignatureInput,
  verifyCompatSignature,
} from '@clgw/core/release/signature.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DevKeys, generateDevKeys } from '../../../image/src/release/keys.js';
import { signDocument } from '../../../image/src/release/sign.js';
import { SAMPLE_YAML } from '../../fixtures/release/compat.js';
import {
  envelopeOf,
  forgeSign,
  issue,
  type KeyPair,
  makeKeyPair,
  signedEnvelope,
  type TestCert,
} from '../../fixtures/release/pki.js';

const document = new TextEncoder().encode(SAMPLE_YAML);
const NOW = Date.now();
const DAY = 86_400_000;

let keys: DevKeys;
let rootKeys: KeyPair;
let interKeys: KeyPair;
let leafKeys: KeyPair;
let evilKeys: KeyPair;
let root: TestCert;
let inter: TestCert;
let leaf: TestCert;
let otherRoot: TestCert;

beforeAll(() => {
  keys = generateDevKeys();
  rootKeys = makeKeyPair();
  interKeys = makeKeyPair();
  leafKeys = makeKeyPair();
  evilKeys = makeKeyPair();
  root = issue({ commonName: 'Test Release Root', keys: rootKeys, ca: true });
  inter = issue({ commonName: 'Test Release Intermediate', keys: interKeys, issuer: root, ca: true });
  leaf = issue({ commonName: 'Test Release Signing', keys: leafKeys, issuer: inter });
  otherRoot = issue({ commonName: 'Other Vendor Root', keys: evilKeys, ca: true });
});

function verify(over: Partial<VerifyCompatSignatureInput> = {}) {
  return verifyCompatSignature({
    document,
    envelope: signedEnvelope(document, leaf, [leaf, inter]),
    trustedRootsPem: root.certPem,
    now: NOW,
    ...over,
  });
}

function refusal(over: Partial<VerifyCompatSignatureInput>): ClgwError {
  try {
    verify(over);
  } catch (e) {
    return e as ClgwError;
  }
  throw new Error('signature was accepted');
}

describe('verifyCompatSignature: good signatures', () => {
  it('accepts the release tool’s own keys and envelope', () => {
    const result = verifyCompatSignature({
      document,
      envelope: signDocument(document, keys),
      trustedRootsPem: keys.root.certPem,
      now: NOW,
    });
    expect(result.signer).toBe('O=clgw development, CN=clgw development release signing');
    expect(result.chain).toEqual([
      'O=clgw development, CN=clgw development release signing',
      'O=clgw development, CN=clgw development release intermediate',
      'O=clgw development, CN=clgw development release root',
    ]);
  });

  it('accepts a chain and PSS signature made independently with node-forge', () => {
    expect(verify().signer).toBe('O=clgw test, CN=Test Release Signing');
  });

  it('accepts an envelope that also carries the pinned root itself, without listing it twice', () => {
    const result = verify({ envelope: signedEnvelope(document, leaf, [leaf, inter, root]) });
    expect(result.chain).toHaveLength(3);
  });

  it('accepts a signing certificate issued directly by the pinned root', () => {
    const direct = issue({ commonName: 'Direct Signing', keys: leafKeys, issuer: root });
    expect(verify({ envelope: signedEnvelope(document, direct, [direct]) }).chain).toHaveLength(2);
  });

  it('accepts any of several pinned roots (key rotation)', () => {
    const both = `${otherRoot.certPem}\n${root.certPem}`;
    expect(verify({ trustedRootsPem: both }).signer).toContain('Test Release Signing');
    expect(refusal({ trustedRootsPem: otherRoot.certPem }).code).toBe('CHAIN_INVALID');
  });

  it('accepts chains up to four certificates and refuses five (depth cap)', () => {
    const i2 = issue({ commonName: 'Intermediate 2', keys: interKeys, issuer: inter, ca: true });
    const i3 = issue({ commonName: 'Intermediate 3', keys: interKeys, issuer: i2, ca: true });
    const i4 = issue({ commonName: 'Intermediate 4', keys: interKeys, issuer: i3, ca: true });
    const leaf4 = issue({ commonName: 'Deep Signing', keys: leafKeys, issuer: i3 });
    expect(verify({ envelope: signedEnvelope(document, leaf4, [leaf4, i3, i2, inter]) }).chain).toHaveLength(
      5,
    );
    const leaf5 = issue({ commonName: 'Too Deep Signing', keys: leafKeys, issuer: i4 });
    const err = refusal({ envelope: signedEnvelope(document, leaf5, [leaf5, i4, i3, i2, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain('chain has 5 certificates, at most 4 are allowed');
  });
});

describe('verifyCompatSignature: refusals', () => {
  it('reports a missing envelope as SIGNATURE_MISSING', () => {
    const err = refusal({ envelope: undefined });
    expect(err.code).toBe('SIGNATURE_MISSING');
    expect(err.message).toContain('compat.yaml.sig is missing');
  });

  it('reports an altered document as SIGNATURE_INVALID', () => {
    const tampered = new TextEncoder().encode(SAMPLE_YAML.replace('serial: 42', 'serial: 43'));
    const err = refusal({ document: tampered });
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toContain('signature does not match the document');
    // One flipped bit at the very end is enough.
    const flipped = Uint8Array.from(document);
    flipped[flipped.length - 1]! ^= 1;
    expect(refusal({ document: flipped }).code).toBe('SIGNATURE_INVALID');
  });

  it('reports a signature by an unknown key behind a genuine chain as SIGNATURE_INVALID', () => {
    const envelope = envelopeOf(forgeSign(document, evilKeys.privateKey), [leaf.certPem, inter.certPem]);
    expect(refusal({ envelope }).code).toBe('SIGNATURE_INVALID');
  });

  it('refuses a self-made chain that ends at an unpinned root', () => {
    const evilInter = issue({ commonName: 'Evil Intermediate', keys: evilKeys, issuer: otherRoot, ca: true });
    const evilLeaf = issue({ commonName: 'Evil Signing', keys: evilKeys, issuer: evilInter });
    const err = refusal({ envelope: signedEnvelope(document, evilLeaf, [evilLeaf, evilInter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      'certificate "O=clgw test, CN=Evil Intermediate" (chain[1]) was not issued by a pinned root',
    );
  });

  it('never trusts a root embedded in the envelope, even with the pinned root’s exact name', () => {
    // Same subject as the pinned root, different key, self-signed: a look-alike trust anchor.
    const fakeRoot = issue({ commonName: 'Test Release Root', keys: evilKeys, ca: true });
    const fakeInter = issue({
      commonName: 'Test Release Intermediate',
      keys: evilKeys,
      issuer: fakeRoot,
      ca: true,
    });
    const fakeLeaf = issue({ commonName: 'Test Release Signing', keys: evilKeys, issuer: fakeInter });
    const err = refusal({ envelope: signedEnvelope(document, fakeLeaf, [fakeLeaf, fakeInter, fakeRoot]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=Test Release Root" (chain[2]) was not issued by a pinned root',
    );
    // Without the fake root in the envelope the look-alike intermediate fails the same way.
    const err2 = refusal({ envelope: signedEnvelope(document, fakeLeaf, [fakeLeaf, fakeInter]) });
    expect(err2.code).toBe('CHAIN_INVALID');
    expect(err2.message).toContain('(chain[1]) was not issued by a pinned root');
  });

  it('refuses an intermediate that names the pinned root as issuer, with its key id, but was signed by another key', () => {
    const forged = issue({
      commonName: 'Forged Intermediate',
      keys: evilKeys,
      issuerName: { commonName: 'Test Release Root' },
      authorityKeyId: root.ski,
      signingKey: evilKeys.privateKey,
      ca: true,
    });
    const forgedLeaf = issue({ commonName: 'Forged Signing', keys: evilKeys, issuer: forged });
    const err = refusal({ envelope: signedEnvelope(document, forgedLeaf, [forgedLeaf, forged]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=Forged Intermediate" (chain[1]) was not issued by a pinned root',
    );
    expect(err.message).toContain('it names issuer "O=clgw test, CN=Test Release Root"');
  });

  it('refuses a signing certificate whose intermediate is not its issuer', () => {
    const strayLeaf = issue({ commonName: 'Stray Signing', keys: leafKeys, issuer: otherRoot });
    const err = refusal({ envelope: signedEnvelope(document, strayLeaf, [strayLeaf, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=Stray Signing" (chain[0]) was not issued by the next certificate in the chain, "O=clgw test, CN=Test Release Intermediate"',
    );
  });

  it('refuses a signing certificate that names the intermediate as issuer but was signed by another key', () => {
    const forgedLeaf = issue({
      commonName: 'Forged Signing',
      keys: evilKeys,
      issuerName: { commonName: 'Test Release Intermediate' },
      authorityKeyId: inter.ski,
      signingKey: evilKeys.privateKey,
    });
    const err = refusal({ envelope: signedEnvelope(document, forgedLeaf, [forgedLeaf, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=Forged Signing" (chain[0]) was not issued by the next certificate',
    );
  });

  it('refuses a chain in the wrong order', () => {
    const err = refusal({ envelope: signedEnvelope(document, leaf, [leaf, root, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
  });

  it('refuses an expired or not yet valid signing certificate', () => {
    const expired = issue({
      commonName: 'Expired Signing',
      keys: leafKeys,
      issuer: inter,
      notBefore: new Date(NOW - 400 * DAY),
      notAfter: new Date(NOW - DAY),
    });
    const err = refusal({ envelope: signedEnvelope(document, expired, [expired, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toMatch(/"O=clgw test, CN=Expired Signing" \(chain\[0\]\) expired at \d{4}-/);
    const future = issue({
      commonName: 'Future Signing',
      keys: leafKeys,
      issuer: inter,
      notBefore: new Date(NOW + DAY),
      notAfter: new Date(NOW + 400 * DAY),
    });
    expect(refusal({ envelope: signedEnvelope(document, future, [future, inter]) }).message).toContain(
      '(chain[0]) is not valid before',
    );
  });

  it('judges validity at the injected time, not the system clock', () => {
    expect(refusal({ now: NOW + 3 * 365 * DAY }).message).toContain('expired at');
  });

  it('refuses an expired intermediate and an expired pinned root', () => {
    const oldInter = issue({
      commonName: 'Old Intermediate',
      keys: interKeys,
      issuer: root,
      ca: true,
      notBefore: new Date(NOW - 400 * DAY),
      notAfter: new Date(NOW - DAY),
    });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: oldInter });
    expect(refusal({ envelope: signedEnvelope(document, l, [l, oldInter]) }).message).toContain(
      '"O=clgw test, CN=Old Intermediate" (chain[1]) expired',
    );
    const oldRoot = issue({
      commonName: 'Old Root',
      keys: rootKeys,
      ca: true,
      notBefore: new Date(NOW - 400 * DAY),
      notAfter: new Date(NOW - DAY),
    });
    const l2 = issue({ commonName: 'Signing', keys: leafKeys, issuer: oldRoot });
    const err = refusal({ envelope: signedEnvelope(document, l2, [l2]), trustedRootsPem: oldRoot.certPem });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain('"O=clgw test, CN=Old Root" (pinned root) expired');
  });

  it('refuses a signing certificate without the code-signing extended key usage', () => {
    for (const eku of [['serverAuth'], [] as string[]]) {
      const tls = issue({ commonName: 'TLS Server', keys: leafKeys, issuer: inter, eku });
      const err = refusal({ envelope: signedEnvelope(document, tls, [tls, inter]) });
      expect(err.code).toBe('CHAIN_INVALID');
      expect(err.message).toContain(
        '"O=clgw test, CN=TLS Server" (chain[0]) lacks the code-signing extended key usage',
      );
    }
  });

  it('refuses a CA certificate as the signer, even with the code-signing usage', () => {
    const caLeaf = issue({
      commonName: 'CA Signer',
      keys: leafKeys,
      issuer: inter,
      ca: true,
      eku: ['codeSigning'],
    });
    const err = refusal({ envelope: signedEnvelope(document, caLeaf, [caLeaf, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain('"O=clgw test, CN=CA Signer" (chain[0]) is a CA certificate');
    // The pinned root's own key cannot sign releases directly either.
    expect(refusal({ envelope: signedEnvelope(document, root, [root]) }).message).toContain(
      'is a CA certificate',
    );
  });

  it('refuses an end-entity certificate used as an intermediate', () => {
    const notCa = issue({ commonName: 'Not A CA', keys: interKeys, issuer: root, eku: ['codeSigning'] });
    const below = issue({ commonName: 'Below Not A CA', keys: leafKeys, issuer: notCa });
    const err = refusal({ envelope: signedEnvelope(document, below, [below, notCa]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain('"O=clgw test, CN=Not A CA" (chain[1]) is not a CA certificate');
  });

  it('refuses a signing key below 2048 bits', () => {
    const weak = issue({ commonName: 'Weak Signing', keys: makeKeyPair(1024), issuer: inter });
    const err = refusal({ envelope: signedEnvelope(document, weak, [weak, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain('(chain[0]) uses a 1024-bit RSA key; at least 2048 bits are required');
  });

  it.each([
    ['not JSON', Buffer.from('-----BEGIN SIGNATURE-----'), 'not UTF-8 JSON'],
    ['a JSON list', Buffer.from('[]'), '(envelope)'],
    ['an unknown key', 'extra', 'unknown keys extra'],
    ['another format', 'format', 'format'],
    ['another algorithm', 'algorithm', 'algorithm'],
    ['bad base64', 'signature', 'signature: expected standard base64'],
    ['an empty chain', 'chain', 'chain: expected at least the signing certificate'],
    ['a chain entry that is not PEM', 'chainText', 'chain.0: expected exactly one PEM certificate'],
    ['two certificates in one entry', 'chainDouble', 'chain.0: expected exactly one PEM certificate'],
  ])('refuses an envelope with %s as SIGNATURE_INVALID', (_what, kind, message) => {
    const sig = forgeSign(document, leafKeys.privateKey);
    const chain = [leaf.certPem, inter.certPem];
    const envelopes: Record<string, Buffer> = {
      extra: envelopeOf(sig, chain, { extra: 1 }),
      format: envelopeOf(sig, chain, { format: 'clgw-sig-v2' }),
      algorithm: envelopeOf(sig, chain, { algorithm: 'RSA-SHA1' }),
      signature: envelopeOf('not base64!', chain),
      chain: envelopeOf(sig, []),
      chainText: envelopeOf(sig, ['hello']),
      chainDouble: envelopeOf(sig, [leaf.certPem + inter.certPem]),
    };
    const envelope = typeof kind === 'string' ? envelopes[kind]! : kind;
    const err = refusal({ envelope });
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toContain('compat.yaml.sig is malformed');
    expect(err.message).toContain(message);
  });

  it('refuses an oversized envelope without parsing it', () => {
    const err = refusal({ envelope: Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x20) });
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toContain('more than the 65536 allowed');
  });

  it('refuses a PEM block whose content is not a certificate', () => {
    const garbage = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const err = refusal({ envelope: envelopeOf(forgeSign(document, leafKeys.privateKey), [garbage]) });
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toContain('chain[0] is not a readable certificate');
  });

  it('refuses to run without a usable pinned root', () => {
    expect(refusal({ trustedRootsPem: '' }).code).toBe('CONFIG_INVALID');
    expect(refusal({ trustedRootsPem: leaf.certPem }).message).toContain('is not a CA certificate');
  });
});

describe('verifyCompatSignature: weak CA certificates (#19)', () => {
  it('accepts sound chains: the development keys at 2048 bits, pathLen 1 with one sub-CA, pathLen 0 above the signer', () => {
    const dev = generateDevKeys({ bits: 2048, now: NOW });
    const result = verifyCompatSignature({
      document,
      envelope: signDocument(document, dev),
      trustedRootsPem: dev.root.certPem,
      now: NOW,
    });
    expect(result.chain).toHaveLength(3);
    const one = issue({ commonName: 'PathLen 1', keys: interKeys, issuer: root, ca: true, pathLength: 1 });
    const sub = issue({ commonName: 'Sub CA', keys: interKeys, issuer: one, ca: true, pathLength: 0 });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: sub });
    expect(verify({ envelope: signedEnvelope(document, l, [l, sub, one]) }).chain).toHaveLength(4);
    // The pinned root itself embedded at the end is not an intermediate.
    const root1 = issue({ commonName: 'Root PathLen 1', keys: rootKeys, ca: true, pathLength: 1 });
    const i1 = issue({ commonName: 'Intermediate', keys: interKeys, issuer: root1, ca: true, pathLength: 0 });
    const l1 = issue({ commonName: 'Signing', keys: leafKeys, issuer: i1 });
    expect(
      verify({ envelope: signedEnvelope(document, l1, [l1, i1, root1]), trustedRootsPem: root1.certPem })
        .chain,
    ).toHaveLength(3);
  });

  it('refuses a sub-CA below a pathLen:0 intermediate, and an intermediate below a pathLen:0 root', () => {
    const limited = issue({
      commonName: 'Limited Intermediate',
      keys: interKeys,
      issuer: root,
      ca: true,
      pathLength: 0,
    });
    const sub = issue({ commonName: 'Sub CA', keys: interKeys, issuer: limited, ca: true });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: sub });
    const err = refusal({ envelope: signedEnvelope(document, l, [l, sub, limited]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      'certificate "O=clgw test, CN=Limited Intermediate" (chain[2]) has pathLenConstraint 0, which allows no intermediate CA below it, but the chain has 1: "O=clgw test, CN=Sub CA"',
    );

    const root0 = issue({ commonName: 'Root PathLen 0', keys: rootKeys, ca: true, pathLength: 0 });
    const i0 = issue({ commonName: 'Intermediate', keys: interKeys, issuer: root0, ca: true });
    const l0 = issue({ commonName: 'Signing', keys: leafKeys, issuer: i0 });
    for (const chain of [
      [l0, i0],
      [l0, i0, root0],
    ]) {
      const e = refusal({ envelope: signedEnvelope(document, l0, chain), trustedRootsPem: root0.certPem });
      expect(e.code).toBe('CHAIN_INVALID');
      expect(e.message).toMatch(
        /"O=clgw test, CN=Root PathLen 0" \((pinned root|chain\[2\])\) has pathLenConstraint 0, which allows no intermediate CA below it, but the chain has 1: "O=clgw test, CN=Intermediate"/,
      );
    }
    // A signing certificate directly below the pathLen:0 root is fine.
    const direct = issue({ commonName: 'Direct Signing', keys: leafKeys, issuer: root0 });
    expect(
      verify({ envelope: signedEnvelope(document, direct, [direct]), trustedRootsPem: root0.certPem }).chain,
    ).toHaveLength(2);
  });

  it('refuses an intermediate with a 1024-bit RSA key, and a 1024-bit pinned root', () => {
    const weakInter = issue({
      commonName: 'Weak Intermediate',
      keys: makeKeyPair(1024),
      issuer: root,
      ca: true,
    });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: weakInter });
    const err = refusal({ envelope: signedEnvelope(document, l, [l, weakInter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      'certificate "O=clgw test, CN=Weak Intermediate" (chain[1]) uses a 1024-bit RSA key; at least 2048 bits are required',
    );

    const weakRoot = issue({ commonName: 'Weak Root', keys: makeKeyPair(1024), ca: true });
    const i = issue({ commonName: 'Intermediate', keys: interKeys, issuer: weakRoot, ca: true });
    const l2 = issue({ commonName: 'Signing', keys: leafKeys, issuer: i });
    const err2 = refusal({
      envelope: signedEnvelope(document, l2, [l2, i]),
      trustedRootsPem: weakRoot.certPem,
    });
    expect(err2.code).toBe('CHAIN_INVALID');
    expect(err2.message).toContain('"O=clgw test, CN=Weak Root" (pinned root) uses a 1024-bit RSA key');
  });

  it('refuses an intermediate signed with SHA-1 or MD5, and a SHA-1-signed signing certificate', () => {
    for (const [digest, name] of [
      ['sha1', 'sha1WithRSAEncryption (SHA-1)'],
      ['md5', 'md5WithRSAEncryption (MD5)'],
    ] as const) {
      const old = issue({ commonName: 'Old Intermediate', keys: interKeys, issuer: root, ca: true, digest });
      const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: old });
      const err = refusal({ envelope: signedEnvelope(document, l, [l, old]) });
      expect(err.code).toBe('CHAIN_INVALID');
      expect(err.message).toContain(
        `certificate "O=clgw test, CN=Old Intermediate" (chain[1]) is signed with ${name}; signatures over SHA-1, MD5`,
      );
    }
    const oldLeaf = issue({ commonName: 'SHA-1 Signing', keys: leafKeys, issuer: inter, digest: 'sha1' });
    const err = refusal({ envelope: signedEnvelope(document, oldLeaf, [oldLeaf, inter]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=SHA-1 Signing" (chain[0]) is signed with sha1WithRSAEncryption',
    );
  });

  it('does not judge the pinned root’s own self-signature, which nothing relies on', () => {
    const sha1Root = issue({ commonName: 'SHA-1 Root', keys: rootKeys, ca: true, digest: 'sha1' });
    const i = issue({ commonName: 'Intermediate', keys: interKeys, issuer: sha1Root, ca: true });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: i });
    for (const chain of [
      [l, i],
      [l, i, sha1Root],
    ])
      expect(
        verify({ envelope: signedEnvelope(document, l, chain), trustedRootsPem: sha1Root.certPem }).chain,
      ).toHaveLength(3);
  });

  it('refuses a CA whose keyUsage lacks keyCertSign', () => {
    const crlOnly = issue({
      commonName: 'CRL Signer',
      keys: interKeys,
      issuer: root,
      ca: true,
      noKeyCertSign: true,
    });
    const l = issue({ commonName: 'Signing', keys: leafKeys, issuer: crlOnly });
    const err = refusal({ envelope: signedEnvelope(document, l, [l, crlOnly]) });
    expect(err.code).toBe('CHAIN_INVALID');
    expect(err.message).toContain(
      '"O=clgw test, CN=CRL Signer" (chain[1]) has a keyUsage without keyCertSign, so it cannot issue "O=clgw test, CN=Signing"',
    );
  });
});
