import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyCompatSignature } from '@clgw/core/release/signature.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevKeys, generateDevKeys, saveKeys } from '../../../image/src/release/keys.js';
import { signDocument } from '../../../image/src/release/sign.js';
import { SAMPLE_YAML } from '../../fixtures/release/compat.js';

/**
 * Cross-checks with OpenSSL's own command line tool that our certificates form a standard
 * chain and our signatures are plain RSA-PSS/SHA-256 — in both directions — so another
 * implementation (a vendor's HSM tooling, a field technician's openssl) can sign and verify.
 */

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function openssl(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('openssl', args, { cwd, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
let keys: DevKeys;
const PSS = [
  '-sigopt',
  'rsa_padding_mode:pss',
  '-sigopt',
  'rsa_pss_saltlen:32',
  '-sigopt',
  'rsa_mgf1_md:sha256',
];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-release-openssl-'));
  keys = generateDevKeys();
  await saveKeys(path.join(dir, 'keys'), keys);
  await fs.writeFile(path.join(dir, 'compat.yaml'), SAMPLE_YAML);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('OpenSSL agrees with the release keys and signatures', () => {
  it('verifies the generated chain strictly, and only through the intermediate', async () => {
    const ok = await openssl(
      [
        'verify',
        '-x509_strict',
        '-CAfile',
        'keys/root.pem',
        '-untrusted',
        'keys/intermediate.pem',
        'keys/signing.pem',
      ],
      dir,
    );
    expect(ok.stdout.trim()).toBe('keys/signing.pem: OK');
    expect(ok.code).toBe(0);
    const missing = await openssl(['verify', '-CAfile', 'keys/root.pem', 'keys/signing.pem'], dir);
    expect(missing.code).not.toBe(0);
  });

  it('sees a CA root and intermediate, and an end-entity code-signing certificate', async () => {
    const text = await openssl(['x509', '-in', 'keys/signing.pem', '-noout', '-text'], dir);
    expect(text.stdout).toContain('CA:FALSE');
    expect(text.stdout).toContain('Code Signing');
    expect(text.stdout).toContain('Digital Signature');
    expect(text.stdout).toContain('Public-Key: (3072 bit)');
    const inter = await openssl(['x509', '-in', 'keys/intermediate.pem', '-noout', '-text'], dir);
    expect(inter.stdout).toMatch(/CA:TRUE, pathlen:0/);
    expect(inter.stdout).toContain('Certificate Sign');
  });

  it('verifies our envelope’s signature with openssl dgst', async () => {
    const envelope = JSON.parse(signDocument(Buffer.from(SAMPLE_YAML), keys).toString()) as {
      signature: string;
    };
    await fs.writeFile(path.join(dir, 'ours.sig'), Buffer.from(envelope.signature, 'base64'));
    const pub = await openssl(['x509', '-in', 'keys/signing.pem', '-noout', '-pubkey'], dir);
    await fs.writeFile(path.join(dir, 'signing.pub'), pub.stdout);
    const ok = await openssl(
      ['dgst', '-sha256', ...PSS, '-verify', 'signing.pub', '-signature', 'ours.sig', 'compat.yaml'],
      dir,
    );
    expect(ok.stdout.trim()).toBe('Verified OK');
    await fs.writeFile(path.join(dir, 'tampered.yaml'), SAMPLE_YAML.replace('42', '43'));
    const bad = await openssl(
      ['dgst', '-sha256', ...PSS, '-verify', 'signing.pub', '-signature', 'ours.sig', 'tampered.yaml'],
      dir,
    );
    expect(bad.code).not.toBe(0);
  });

  it('accepts a signature made by openssl dgst in our envelope', async () => {
    const made = await openssl(
      ['dgst', '-sha256', ...PSS, '-sign', 'keys/signing.key', '-out', 'theirs.sig', 'compat.yaml'],
      dir,
    );
    expect(made.code).toBe(0);
    const signature = (await fs.readFile(path.join(dir, 'theirs.sig'))).toString('base64');
    const envelope = Buffer.from(
      JSON.stringify({
        format: 'clgw-sig-v1',
        algorithm: 'RSA-PSS-SHA256',
        signature,
        chain: [keys.signing.certPem, keys.intermediate.certPem],
      }),
    );
    const result = verifyCompatSignature({
      document: Buffer.from(SAMPLE_YAML),
      envelope,
      trustedRootsPem: keys.root.certPem,
      now: Date.now(),
    });
    expect(result.signer).toContain('release signing');
  });
});

describe('chains OpenSSL makes with other key types and signature algorithms (#19)', () => {
  const EXTENSIONS = [
    '[ca]',
    'basicConstraints = critical, CA:TRUE, pathlen:0',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '[leaf]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = codeSigning',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
  let serial = 100;

  async function run(args: string[]): Promise<void> {
    const r = await openssl(args, dir);
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  }

  /** A new key `name`.key and its certificate `name`.pem, issued by `caCert`/`caKey` with `signArgs`. */
  async function issueWithOpenssl(
    name: string,
    keyArgs: string[],
    caCert: string,
    caKey: string,
    signArgs: string[],
    ext: 'ca' | 'leaf',
  ): Promise<{ certPem: string; keyPem: string }> {
    await run(['genpkey', ...keyArgs, '-out', `${name}.key`]);
    await run([
      'req',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      `/O=clgw test/CN=${name}`,
      '-out',
      `${name}.csr`,
    ]);
    await run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      caCert,
      '-CAkey',
      caKey,
      '-set_serial',
      String(serial++),
      '-days',
      '30',
      ...signArgs,
      '-extfile',
      'ext.cnf',
      '-extensions',
      ext,
      '-out',
      `${name}.pem`,
    ]);
    return {
      certPem: await fs.readFile(path.join(dir, `${name}.pem`), 'utf8'),
      keyPem: await fs.readFile(path.join(dir, `${name}.key`), 'utf8'),
    };
  }

  beforeAll(async () => {
    await fs.writeFile(path.join(dir, 'ext.cnf'), EXTENSIONS);
    // The release tool keeps the root's key out of the keys directory; this test issues with it.
    await fs.writeFile(path.join(dir, 'root.key'), keys.root.keyPem!, { mode: 0o600 });
  });

  const RSA_2048 = ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
  const ec = (curve: string) => ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`];
  const CASES: {
    what: string;
    name: string;
    key: string[];
    byRoot: string[];
    byInter: string[];
    refusal?: string;
  }[] = [
    {
      what: 'accepts an EC P-256 intermediate',
      name: 'ec-p256',
      key: ec('P-256'),
      byRoot: ['-sha256'],
      byInter: ['-sha256'],
    },
    {
      what: 'accepts an EC P-384 intermediate',
      name: 'ec-p384',
      key: ec('P-384'),
      byRoot: ['-sha384'],
      byInter: ['-sha384'],
    },
    // Ed25519 hashes internally, so the intermediate signs the signing certificate without -sha256.
    {
      what: 'accepts an Ed25519 intermediate',
      name: 'ed25519',
      key: ['-algorithm', 'ED25519'],
      byRoot: ['-sha256'],
      byInter: [],
    },
    {
      what: 'accepts an intermediate signed with RSA-PSS/SHA-256',
      name: 'pss-sha256',
      key: RSA_2048,
      byRoot: ['-sha256', ...PSS],
      byInter: ['-sha256'],
    },
    {
      what: 'refuses an EC P-192 intermediate',
      name: 'ec-p192',
      key: ec('prime192v1'),
      byRoot: ['-sha256'],
      byInter: ['-sha256'],
      refusal: 'uses an EC key on prime192v1; P-256, P-384 or P-521 is required',
    },
    {
      what: 'refuses an intermediate signed with RSA-PSS and its default SHA-1',
      name: 'pss-sha1',
      key: RSA_2048,
      byRoot: ['-sha1', '-sigopt', 'rsa_padding_mode:pss'],
      byInter: ['-sha256'],
      refusal: 'is signed with RSASSA-PSS (SHA-1)',
    },
  ];
  for (const { what, name, key, byRoot, byInter, refusal } of CASES)
    it(what, async () => {
      const inter = await issueWithOpenssl(name, key, 'keys/root.pem', 'root.key', byRoot, 'ca');
      const signing = await issueWithOpenssl(
        `${name}-signing`,
        RSA_2048,
        `${name}.pem`,
        `${name}.key`,
        byInter,
        'leaf',
      );
      // OpenSSL itself accepts every one of these chains (at security level 0, whatever the system's
      // openssl.cnf says): the refusals are the agent's own rules, not malformed certificates.
      const openSslVerdict = await openssl(
        [
          'verify',
          '-auth_level',
          '0',
          '-CAfile',
          'keys/root.pem',
          '-untrusted',
          `${name}.pem`,
          `${name}-signing.pem`,
        ],
        dir,
      );
      expect(openSslVerdict.stdout.trim()).toBe(`${name}-signing.pem: OK`);
      const verifyIt = () =>
        verifyCompatSignature({
          document: Buffer.from(SAMPLE_YAML),
          envelope: signDocument(Buffer.from(SAMPLE_YAML), { root: keys.root, intermediate: inter, signing }),
          trustedRootsPem: keys.root.certPem,
          now: Date.now(),
        });
      if (refusal === undefined) {
        expect(verifyIt().chain[1]).toBe(`O=clgw test, CN=${name}`);
      } else {
        expect(verifyIt).toThrow(expect.objectContaining({ code: 'CHAIN_INVALID' }));
        expect(verifyIt).toThrow(`certificate "O=clgw test, CN=${name}" (chain[1]) ${refusal}`);
      }
    });
});
