import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { SUPPORT_CERT_MAX_HOURS, SUPPORT_ROLE_PRINCIPAL } from '@clgw/core/ssh/principal.js';

/**
 * The support CA: an OpenSSH key (ed25519) that signs the short-lived user certificates Mitel
 * support logs in with (SPEC §9). Only its public key goes into the root filesystem
 * (/usr/share/clgw/trust/support-ca.pub, sshd's TrustedUserCAKeys), so the signed release carries
 * it and an update rotates it (ship the old and the new key, one a line, for a while). It opens
 * a session that can become root on every appliance, so its private key is kept as the release
 * CA's are: `clgw-release keys` writes it into the CA directory (`--ca-out`, offline), never
 * beside the signing key, and only `support-ca.pub` into the keys directory the image build
 * reads. `make image KEYS=DIR` requires that public key; only a development build (no KEYS)
 * generates a development CA, in its development keys directory.
 */
export const SUPPORT_CA_FILES = { key: 'support-ca', pub: 'support-ca.pub' } as const;

/** OpenSSH public key types sshd accepts as a CA. */
const PUBLIC_KEY_LINE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( [^\r\n]*)?$/;

/**
 * Checks that `text` holds OpenSSH public keys and nothing else (comments and blank lines
 * aside) — above all never a private key, which must not reach an image or an appliance.
 * Returns the text to ship, one key a line.
 */
export function supportCaPublicKeys(text: string, source: string): string {
  if (/PRIVATE KEY/.test(text))
    throw new ClgwError('CONFIG_INVALID', `${source} holds a private key; only the public key ships`, {
      details: { file: source },
    });
  const keys: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    if (!PUBLIC_KEY_LINE.test(line))
      throw new ClgwError('CONFIG_INVALID', `${source} line ${i + 1} is not an OpenSSH public key`, {
        details: { file: source, line: i + 1 },
      });
    keys.push(line);
  });
  if (keys.length === 0)
    throw new ClgwError('CONFIG_INVALID', `${source} holds no public key`, { details: { file: source } });
  return `${keys.join('\n')}\n`;
}

/** The public key(s) in `dir/support-ca.pub`, checked; undefined when there is no such file. */
export async function loadSupportCa(dir: string): Promise<string | undefined> {
  const file = path.join(dir, SUPPORT_CA_FILES.pub);
  const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new ClgwError('CONFIG_INVALID', `cannot read ${file}: ${e.message}`, {
      cause: e,
      details: { file },
    });
  });
  return text === undefined ? undefined : supportCaPublicKeys(text, file);
}

/** Throws NOT_ALLOWED when `dir` already holds a support CA file (of `names`, default both). */
export async function refuseExistingSupportCa(
  dir: string,
  names: readonly string[] = Object.values(SUPPORT_CA_FILES),
): Promise<void> {
  for (const name of names) {
    const file = path.join(dir, name);
    if (
      await fs.access(file).then(
        () => true,
        () => false,
      )
    )
      throw new ClgwError('NOT_ALLOWED', `${file} already exists; refusing to replace the support CA`, {
        details: { file },
      });
  }
}

/**
 * Generates a support CA with ssh-keygen: `support-ca` (0600) and `support-ca.pub` in `dir`, and
 * a copy of `support-ca.pub` in `options.pubDir` when given (the keys directory the image build
 * reads, while `dir` is the offline CA directory). Made under a temporary name and renamed into
 * place, so a cut never leaves half a CA. Returns the public key and its fingerprint.
 */
export async function generateSupportCa(
  dir: string,
  options: { overwrite?: boolean; comment?: string; pubDir?: string } = {},
): Promise<{ publicKey: string; fingerprint: string }> {
  if (!options.overwrite) {
    await refuseExistingSupportCa(dir);
    if (options.pubDir !== undefined) await refuseExistingSupportCa(options.pubDir, [SUPPORT_CA_FILES.pub]);
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = await fs.mkdtemp(path.join(dir, '.support-ca-'));
  try {
    const key = path.join(temp, SUPPORT_CA_FILES.key);
    await execFile('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      options.comment ?? 'clgw development support CA',
      '-f',
      key,
    ]);
    const { stdout } = await execFile('ssh-keygen', ['-l', '-f', `${key}.pub`]);
    const publicKey = await fs.readFile(`${key}.pub`, 'utf8');
    await fs.rename(key, path.join(dir, SUPPORT_CA_FILES.key));
    await fs.rename(`${key}.pub`, path.join(dir, SUPPORT_CA_FILES.pub));
    if (options.pubDir !== undefined) {
      await fs.mkdir(options.pubDir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(path.join(options.pubDir, SUPPORT_CA_FILES.pub), publicKey, { mode: 0o644 });
    }
    return { publicKey, fingerprint: stdout.split(' ')[1] ?? stdout.trim() };
  } finally {
    await fs.rm(temp, { recursive: true, force: true });
  }
}

/**
 * The support CA's public key(s) for images built with the vendor's keys (`make image KEYS=DIR`):
 * `DIR/support-ca.pub` must be there — never a CA made up on the spot, which the images would
 * trust while its private key sits on the build machine. Refuses (CONFIG_INVALID, naming the
 * file) a missing public key, and the CA's private key beside the signing key.
 */
export async function requireSupportCa(dir: string): Promise<string> {
  const key = path.join(dir, SUPPORT_CA_FILES.key);
  if (
    await fs.access(key).then(
      () => true,
      () => false,
    )
  )
    throw new ClgwError(
      'CONFIG_INVALID',
      `${key} is the support CA's private key, beside the release signing key: move it to the CA directory kept offline (clgw-release keys --ca-out); the image build needs only ${SUPPORT_CA_FILES.pub}`,
      { details: { file: key } },
    );
  const existing = await loadSupportCa(dir);
  if (existing) return existing;
  const file = path.join(dir, SUPPORT_CA_FILES.pub);
  throw new ClgwError(
    'CONFIG_INVALID',
    `${file} is missing: images built with KEYS=${dir} trust the support CA's public key from there (clgw-release keys writes it); no development CA is made for them`,
    { details: { file } },
  );
}

/**
 * The development support CA of a development build (`make image` without KEYS, the simulator,
 * the QEMU run): the one in `dir`, generated there first when there is none — `generated` says
 * so, for the build's development-keys notice.
 */
export async function ensureDevSupportCa(dir: string): Promise<{ publicKey: string; generated: boolean }> {
  const existing = await loadSupportCa(dir);
  if (existing) return { publicKey: existing, generated: false };
  const { publicKey } = await generateSupportCa(dir);
  return {
    publicKey: supportCaPublicKeys(publicKey, path.join(dir, SUPPORT_CA_FILES.pub)),
    generated: true,
  };
}

const PRINCIPAL = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface SupportCertRequest {
  /** The CA's private key file. */
  ca: string;
  /** Principals besides `clgw-support` (which every support certificate names): `appliance-<id>`. */
  principals: string[];
  /** How long it is valid: whole hours, 1 to 24 (the SSH window). */
  hours: number;
  /** The key ID: who it is for (sshd logs it with the serial at every login). */
  identity: string;
  /** The support engineer's public key file (`….pub`). */
  publicKey: string;
}

export interface SupportCert {
  file: string;
  principals: string[];
  identity: string;
  serial: string;
  /** ssh-keygen's own words, e.g. `from 2026-11-21T09:55:00 to 2026-11-21T12:00:00`. */
  valid: string;
}

/** Why a support certificate request cannot be issued, or undefined when it can. */
export function supportCertProblem(
  req: Pick<SupportCertRequest, 'principals' | 'hours' | 'identity'>,
): string | undefined {
  if (!Number.isInteger(req.hours) || req.hours < 1 || req.hours > SUPPORT_CERT_MAX_HOURS)
    return `--hours ${req.hours}: a support certificate is valid for 1 to ${SUPPORT_CERT_MAX_HOURS} whole hours (the SSH window is ${SUPPORT_CERT_MAX_HOURS} h; appliances refuse longer ones)`;
  if (req.principals.length === 0)
    return '--principal is required: the appliance principal the technician reads off the console (appliance-<id>)';
  for (const p of req.principals)
    if (!PRINCIPAL.test(p))
      return `--principal ${JSON.stringify(p)}: lowercase letters, digits, '.', '_' and '-' only`;
  if (!req.identity || req.identity.length > 200 || /[\x00-\x1f\x7f]/.test(req.identity))
    return '--identity: 1 to 200 printable characters';
  return undefined;
}

/**
 * Issues a support certificate with `ssh-keygen -s` (run without a shell): principals
 * `clgw-support` plus the given ones, valid from 5 minutes ago (a support PC's clock a little
 * ahead of the appliance's) for `hours`, a random serial, and the pty permission alone: no port,
 * agent or X11 forwarding, no ~/.ssh/rc — support works on the appliance, and never tunnels
 * through it into the customer's LAN (the appliance's sshd refuses forwarding as well). Written
 * beside the public key as `<name>-cert.pub`, as ssh-keygen names it.
 */
export async function issueSupportCert(req: SupportCertRequest): Promise<SupportCert> {
  const problem = supportCertProblem(req);
  if (problem) throw new ClgwError('SETTING_INVALID', problem);
  const principals = [...new Set([SUPPORT_ROLE_PRINCIPAL, ...req.principals])];
  // 63 bits: unique without bookkeeping, and shown by sshd and ssh-keygen as a plain number.
  const serial = (randomBytes(8).readBigUInt64BE() >> 1n).toString();
  const file = `${req.publicKey.replace(/\.pub$/, '')}-cert.pub`;
  await execFile('ssh-keygen', [
    '-q',
    '-s',
    req.ca,
    '-I',
    req.identity,
    '-n',
    principals.join(','),
    '-V',
    `-5m:+${req.hours}h`,
    '-z',
    serial,
    '-O',
    'clear',
    '-O',
    'permit-pty',
    req.publicKey,
  ]);
  const { stdout } = await execFile('ssh-keygen', ['-L', '-f', file]);
  const valid = /^\s*Valid: (.*)$/m.exec(stdout)?.[1]?.trim() ?? 'unknown';
  return { file, principals, identity: req.identity, serial, valid };
}
