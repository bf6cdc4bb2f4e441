import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCompatSignature } from '../../../agent/src/release/signature.js';
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
