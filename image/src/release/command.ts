import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import {
  CONTAINER_NAMES,
  type ContainerName,
  isPlatform,
  PLATFORMS,
  type Platform,
} from '@clgw/core/release/schema.js';
import { buildRelease, type ContainerSource, publishContainers, setRollout, setWithdrawn } from './build.js';
import { generateDevKeys, KEY_FILES, loadKeys, refuseExistingKeys, saveKeys } from './keys.js';
import { revokeCertificates } from './revoke.js';
import { rotateRoot } from './rotate.js';
import { listRootsPem, readTreeRevocations, readTreeRotation, signDocument } from './sign.js';
import {
  generateSupportCa,
  issueSupportCert,
  refuseExistingSupportCa,
  SUPPORT_CA_FILES,
  supportCertProblem,
} from './support-ca.js';
import { verifyTree } from './verify.js';

export const USAGE = `usage:
  clgw-release keys --out DIR [--ca-out DIR] [--force]
      --out: certificates, the signing key and support-ca.pub (the support
      CA's public key: the images trust it; make image KEYS=DIR needs it);
      --ca-out (default DIR-ca): the release CA's private keys and the
      support CA's (support-ca, which signs support's SSH certificates),
      to be kept offline, never beside the signing key
  clgw-release build --keys DIR --tree DIR --version V --platform P
      [--platform P ...] --boot FILE --root FILE --min-source V [--serial N]
      [--expires-days N] [--no-index] [--no-patch-level]
      [--rollout PERCENT [--salt SALT]]
      compat.yaml states the root image's OS patch level (os-release's
      CLGW_PATCH_LEVEL); agents before it refuse the field, as they do the
      chunk index: --no-patch-level and --no-index leave them out;
      --rollout offers the release to PERCENT % of the appliances only
      (a staged rollout from the start; SALT: as for rollout below)
  clgw-release containers --keys DIR --tree DIR --platform P [--platform P ...]
      --container NAME=VERSION,IMAGE,FILE [--container ...] [--serial N]
      [--no-image-id]
      publishes the container set of those platforms, keeping their OS release;
      each FILE must hold exactly IMAGE, whose ID compat.yaml signs (agents
      before it refuse the field: --no-image-id leaves it out)
  clgw-release rollout --keys DIR --tree DIR --platform P [--platform P ...]
      (--percent PERCENT [--salt SALT] | --clear) [--serial N]
      [--expires-days N]
      sets the staged rollout of those platforms' releases (PERCENT: 0-100,
      two decimals at most) or clears it (offered to all), and re-signs
      compat.yaml with the next serial; SALT (1-64 printable characters)
      defaults to the release's current salt, else its version: keep it when
      raising PERCENT, or appliances already offered the release may lose it
  clgw-release withdraw --keys DIR --tree DIR --platform P [--platform P ...]
      (--reason TEXT | --undo) [--serial N] [--expires-days N]
      withdraws those platforms' releases (or lifts the withdrawal) and
      re-signs compat.yaml with the next serial: no appliance installs a
      withdrawn release (not even with clgw update --force); one that has
      downloaded it discards it before switching; one running it keeps it.
      TEXT (1-200 printable characters) is shown on every appliance
  clgw-release revoke --keys DIR [--ca DIR] --tree DIR --serial HEX
      [--serial HEX ...] [--number N] [--expires-days N]
      adds the serials (intermediate or signing certificates) to the tree's
      revocation list (revocations.json), signed with the root's private key
      (--ca, default DIR-ca: the offline CA directory holding root.key), and
      re-signs compat.yaml with the next serial; every later build, rollout,
      containers and sign of the tree carries the list. Issue the new signing
      certificate into --keys first
  clgw-release rotate-root --keys DIR [--ca DIR] --tree DIR --new-root-out DIR
      [--overlap-days N] [--expires-days N]
      makes a new release root (certificate and private key into
      --new-root-out: the new offline key), vouches for it with the current
      root's private key (--ca, default DIR-ca: the offline CA directory
      holding root.key), writes the rotation to the tree (root-rotation.json)
      and re-signs compat.yaml with the next serial; appliances accept chains
      to the current root for N more days (default 90), then only to the new
      one. Every later build, rollout, containers, revoke and sign of the tree
      carries the rotation; keep it there
  clgw-release sign --keys DIR FILE          writes FILE.sig (with the
      revocation list and root rotation of FILE's directory, if it has them)
  clgw-release verify --roots PEM --tree DIR [--skip-artifacts]
  clgw-release support-cert --ca KEY --principal P [--principal P ...]
      --hours N [--identity TEXT] PUBKEY
      an SSH certificate for Mitel support: principals clgw-support and P,
      valid N hours (1-24), written beside PUBKEY as <name>-cert.pub
platforms: ${PLATFORMS.join(', ')}`;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** A mistake in how the tool was called: printed with the usage, exit code 2. */
class UsageError extends Error {}

/**
 * Runs one `clgw-release` command and returns its exit code: 0 done, 1 failed (the reason is
 * printed with its error code), 2 usage error.
 */
export async function main(argv: string[], io: Io = consoleIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'keys':
        await keysCommand(rest, io);
        return 0;
      case 'build':
        await buildCommand(rest, io);
        return 0;
      case 'containers':
        await containersCommand(rest, io);
        return 0;
      case 'rollout':
        await rolloutCommand(rest, io);
        return 0;
      case 'withdraw':
        await withdrawCommand(rest, io);
        return 0;
      case 'revoke':
        await revokeCommand(rest, io);
        return 0;
      case 'rotate-root':
        await rotateRootCommand(rest, io);
        return 0;
      case 'sign':
        await signCommand(rest, io);
        return 0;
      case 'verify':
        await verifyCommand(rest, io);
        return 0;
      case 'support-cert':
        await supportCertCommand(rest, io);
        return 0;
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return 0;
      case undefined:
        throw new UsageError('a command is needed');
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`clgw-release: ${(e as Error).message}`);
      io.err(USAGE);
      return 2;
    }
    if (isClgwError(e)) io.err(`clgw-release: ${e.code}: ${e.message}`);
    else io.err(`clgw-release: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

const consoleIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

async function keysCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: { out: { type: 'string' }, 'ca-out': { type: 'string' }, force: { type: 'boolean' } },
  });
  const out = required(values.out, '--out');
  const caOut = values['ca-out'] ?? `${path.resolve(out)}-ca`;
  const overwrite = values.force ?? false;
  // Refuse before spending a second on key generation.
  if (!overwrite) {
    await refuseExistingKeys(out);
    await refuseExistingKeys(caOut);
    await refuseExistingSupportCa(out);
    await refuseExistingSupportCa(caOut);
  }
  const keys = generateDevKeys();
  // saveKeys refuses a CA directory that is the keys directory or inside it.
  await saveKeys(out, keys, { overwrite, caDir: caOut });
  // The support CA's private key goes with the release CA's (it opens a root-capable session on
  // every appliance); the keys directory gets only the public key the image build reads.
  const ca = await generateSupportCa(caOut, { overwrite, pubDir: out });
  // With --force, a support CA private key an older layout left beside the signing key goes.
  await fs.rm(path.join(out, SUPPORT_CA_FILES.key), { force: true });
  const root = new X509Certificate(keys.root.certPem);
  io.out(`release keys written to ${out} (certificates and the signing key)`);
  io.out(`the CA's private keys written to ${caOut}: keep them offline, apart from ${out}`);
  io.out(`root certificate (pin this on appliances): ${path.join(out, 'root.pem')}`);
  io.out(`  subject ${root.subject.split('\n').join(', ')}`);
  io.out(`  SHA-256 fingerprint ${root.fingerprint256}`);
  io.out(`support CA (signs support's SSH certificates): ${path.join(caOut, SUPPORT_CA_FILES.key)}`);
  io.out(`  public key (the images trust it): ${path.join(out, SUPPORT_CA_FILES.pub)}`);
  io.out(`  fingerprint ${ca.fingerprint}`);
}

async function supportCertCommand(args: string[], io: Io): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      ca: { type: 'string' },
      principal: { type: 'string', multiple: true },
      hours: { type: 'string' },
      identity: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('support-cert needs exactly one PUBKEY');
  const hoursText = required(values.hours, '--hours');
  if (!/^[0-9]{1,6}$/.test(hoursText)) throw new UsageError(`--hours ${hoursText}: expected a whole number`);
  const request = {
    ca: required(values.ca, '--ca'),
    principals: values.principal ?? [],
    hours: Number(hoursText),
    identity: values.identity ?? `${os.userInfo().username}@${os.hostname()}`,
    publicKey: positionals[0]!,
  };
  const problem = supportCertProblem(request);
  if (problem) throw new UsageError(problem);
  for (const [file, what] of [
    [request.ca, 'the CA key'],
    [request.publicKey, 'the public key'],
  ] as const) {
    await fs.access(file).catch(() => {
      throw new UsageError(`cannot read ${what} ${file}`);
    });
  }
  const cert = await issueSupportCert(request);
  io.out(`support certificate written to ${cert.file}`);
  io.out(`  principals ${cert.principals.join(', ')}`);
  io.out(`  valid ${cert.valid}`);
  io.out(`  key ID "${cert.identity}", serial ${cert.serial}`);
}

async function buildCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      tree: { type: 'string' },
      version: { type: 'string' },
      platform: { type: 'string', multiple: true },
      boot: { type: 'string' },
      root: { type: 'string' },
      'min-source': { type: 'string' },
      serial: { type: 'string' },
      'expires-days': { type: 'string' },
      'no-index': { type: 'boolean' },
      'no-patch-level': { type: 'boolean' },
      rollout: { type: 'string' },
      salt: { type: 'string' },
    },
  });
  const platforms = platformsOf(values.platform);
  // Every usage check before any work, so a missing flag is always exit 2.
  if (values.salt !== undefined && values.rollout === undefined)
    throw new UsageError('--salt needs --rollout PERCENT');
  const percent = values.rollout === undefined ? undefined : percentOf(values.rollout, '--rollout');
  const version = required(values.version, '--version');
  const request = {
    tree: required(values.tree, '--tree'),
    version,
    platforms,
    boot: required(values.boot, '--boot'),
    root: required(values.root, '--root'),
    minSourceVersion: required(values['min-source'], '--min-source'),
    serial: optionalInteger(values.serial, '--serial'),
    expiresInDays: optionalInteger(values['expires-days'], '--expires-days'),
    chunkIndex: !(values['no-index'] ?? false),
    patchLevel: !(values['no-patch-level'] ?? false),
    ...(percent === undefined ? {} : { rollout: { percent, salt: values.salt ?? version } }),
  };
  const keys = await loadKeys(required(values.keys, '--keys'));
  const built = await buildRelease({ ...request, keys });
  const c = built.compat;
  io.out(`published ${request.version} for ${request.platforms.join(', ')}`);
  io.out(`  ${built.compatPath}: serial ${c.serial}, published ${c.published}, expires ${c.expires}`);
  io.out(`  ${built.signaturePath}`);
  const level = request.platforms.map((p) => c.platforms[p]?.release.osPatchLevel).find(Boolean);
  io.out(
    level
      ? `  OS patch level: ${level} (the root image's os-release)`
      : `  OS patch level: not stated (${request.patchLevel ? 'the root image declares none' : '--no-patch-level'})`,
  );
  const rollout = request.platforms.map((p) => c.platforms[p]?.release.rollout).find(Boolean);
  io.out(
    rollout
      ? `  staged rollout: ${rollout.percent} % of the appliances (salt ${rollout.salt})`
      : '  offered to every appliance (no staged rollout)',
  );
  for (const [role, a] of Object.entries(built.artifacts)) {
    io.out(`  ${role}: ${a.path} ${a.size} bytes sha256 ${a.sha256}`);
    if (a.index)
      io.out(`  ${role} chunk index: ${a.index.path} ${a.index.size} bytes sha256 ${a.index.sha256}`);
    if (a.index?.pack)
      io.out(
        `  ${role} chunk pack: ${a.index.pack.path} ${a.index.pack.size} bytes sha256 ${a.index.pack.sha256}`,
      );
  }
}

async function containersCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      tree: { type: 'string' },
      platform: { type: 'string', multiple: true },
      container: { type: 'string', multiple: true },
      serial: { type: 'string' },
      'expires-days': { type: 'string' },
      'no-image-id': { type: 'boolean' },
    },
  });
  const platforms = platformsOf(values.platform);
  const containers = (values.container ?? []).map((spec): ContainerSource => {
    const m = /^([a-z]+)=([^,]+),([^,]+),(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--container ${spec}: expected NAME=VERSION,IMAGE,FILE`);
    const name = m[1]!;
    if (!(CONTAINER_NAMES as readonly string[]).includes(name))
      throw new UsageError(`--container ${spec}: NAME is one of ${CONTAINER_NAMES.join(', ')}`);
    return { name: name as ContainerName, version: m[2]!, image: m[3]!, archive: m[4]! };
  });
  const request = {
    tree: required(values.tree, '--tree'),
    platforms,
    containers,
    serial: optionalInteger(values.serial, '--serial'),
    expiresInDays: optionalInteger(values['expires-days'], '--expires-days'),
    stateImageIds: !(values['no-image-id'] ?? false),
  };
  const keys = await loadKeys(required(values.keys, '--keys'));
  const { compat, compatPath } = await publishContainers({ ...request, keys });
  io.out(`published ${containers.length} container(s) for ${request.platforms.join(', ')}`);
  io.out(
    `  ${compatPath}: serial ${compat.serial}, published ${compat.published}, expires ${compat.expires}`,
  );
  for (const c of compat.platforms[request.platforms[0]!]?.containers ?? []) {
    io.out(
      `  ${c.name} ${c.version}: ${c.image} ${c.archive.path} ${c.archive.size} bytes sha256 ${c.archive.sha256}`,
    );
    io.out(`    ID ${c.imageId ?? 'not stated (--no-image-id)'}`);
  }
}

async function rolloutCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      tree: { type: 'string' },
      platform: { type: 'string', multiple: true },
      percent: { type: 'string' },
      salt: { type: 'string' },
      clear: { type: 'boolean' },
      serial: { type: 'string' },
      'expires-days': { type: 'string' },
    },
  });
  const platforms = platformsOf(values.platform);
  const clear = values.clear ?? false;
  if (clear === (values.percent !== undefined))
    throw new UsageError('rollout needs either --percent PERCENT or --clear');
  if (clear && values.salt !== undefined) throw new UsageError('--salt goes with --percent, not --clear');
  const request = {
    tree: required(values.tree, '--tree'),
    platforms,
    percent: values.percent === undefined ? null : percentOf(values.percent, '--percent'),
    ...(values.salt === undefined ? {} : { salt: values.salt }),
    serial: optionalInteger(values.serial, '--serial'),
    expiresInDays: optionalInteger(values['expires-days'], '--expires-days'),
  };
  const keys = await loadKeys(required(values.keys, '--keys'));
  const { compat, compatPath, changes } = await setRollout({ ...request, keys });
  io.out(`staged rollout ${clear ? 'cleared' : 'set'} for ${platforms.join(', ')}`);
  io.out(
    `  ${compatPath}: serial ${compat.serial}, published ${compat.published}, expires ${compat.expires}`,
  );
  const said = (r: { percent: number; salt: string } | undefined) =>
    r ? `${r.percent} % (salt ${r.salt})` : 'every appliance';
  for (const ch of changes) {
    io.out(`${ch.platform}: ${ch.version} offered to ${said(ch.after)}, was ${said(ch.before)}`);
    // The two ways a publisher can take the release away from boxes that were offered it.
    if (ch.before && ch.after && ch.before.salt !== ch.after.salt)
      io.out('  a new salt draws new cohorts: appliances offered it before may no longer be');
    else if (ch.after && ch.after.percent < (ch.before?.percent ?? 100))
      io.out('  a lower percentage holds it back from appliances that have not installed it yet');
  }
}

async function withdrawCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      tree: { type: 'string' },
      platform: { type: 'string', multiple: true },
      reason: { type: 'string' },
      undo: { type: 'boolean' },
      serial: { type: 'string' },
      'expires-days': { type: 'string' },
    },
  });
  const platforms = platformsOf(values.platform);
  const undo = values.undo ?? false;
  if (undo === (values.reason !== undefined))
    throw new UsageError('withdraw needs either --reason TEXT or --undo');
  const request = {
    tree: required(values.tree, '--tree'),
    platforms,
    reason: values.reason ?? null,
    serial: optionalInteger(values.serial, '--serial'),
    expiresInDays: optionalInteger(values['expires-days'], '--expires-days'),
  };
  const keys = await loadKeys(required(values.keys, '--keys'));
  const { compat, compatPath, changes } = await setWithdrawn({ ...request, keys });
  io.out(`withdrawal ${undo ? 'lifted' : 'published'} for ${platforms.join(', ')}`);
  io.out(
    `  ${compatPath}: serial ${compat.serial}, published ${compat.published}, expires ${compat.expires}`,
  );
  for (const ch of changes)
    io.out(
      undo
        ? `${ch.platform}: ${ch.version} offered again`
        : `${ch.platform}: ${ch.version} withdrawn (${request.reason}); appliances running it keep it until a newer release is published`,
    );
}

async function revokeCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      ca: { type: 'string' },
      tree: { type: 'string' },
      serial: { type: 'string', multiple: true },
      number: { type: 'string' },
      'expires-days': { type: 'string' },
    },
  });
  const keysDir = required(values.keys, '--keys');
  const tree = required(values.tree, '--tree');
  const serials = values.serial ?? [];
  if (serials.length === 0) throw new UsageError('--serial is required (one or more)');
  const number = optionalInteger(values.number, '--number');
  const expiresInDays = optionalInteger(values['expires-days'], '--expires-days');
  const rootKeyPem = await readOfflineRootKey(
    values.ca,
    keysDir,
    'a revocation list is signed by the release root itself',
  );
  const keys = await loadKeys(keysDir);
  const revoked = await revokeCertificates({
    tree,
    keys,
    rootKeyPem,
    serials,
    ...(number === undefined ? {} : { number }),
    ...(expiresInDays === undefined ? {} : { expiresInDays }),
  });
  io.out(
    `revocation list ${revoked.list.number} written to ${revoked.listPath}: ${revoked.list.serials.length} serial(s) revoked`,
  );
  for (const serial of revoked.list.serials) io.out(`  ${serial}`);
  io.out(
    revoked.compat
      ? `  ${revoked.compatPath}: re-signed with the list, serial ${revoked.compat.serial}, expires ${revoked.compat.expires}`
      : '  no compat.yaml in the tree yet: the next build carries the list',
  );
}

/**
 * The release root's private key, from the offline CA directory (`--ca DIR`, else `<keys>-ca`):
 * only revocation lists and root rotations need it. `why` says so in the error.
 */
async function readOfflineRootKey(ca: string | undefined, keysDir: string, why: string): Promise<string> {
  const rootKeyFile = path.join(ca ?? `${path.resolve(keysDir)}-ca`, KEY_FILES.rootKey);
  try {
    return await fs.readFile(rootKeyFile, 'utf8');
  } catch (e) {
    throw new ClgwError(
      'CONFIG_INVALID',
      `${why}, and its private key ${rootKeyFile} cannot be read (${(e as Error).message}): bring the offline CA directory and name it with --ca DIR`,
      { cause: e, details: { file: rootKeyFile } },
    );
  }
}

async function rotateRootCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      keys: { type: 'string' },
      ca: { type: 'string' },
      tree: { type: 'string' },
      'new-root-out': { type: 'string' },
      'overlap-days': { type: 'string' },
      'expires-days': { type: 'string' },
    },
  });
  const keysDir = required(values.keys, '--keys');
  const tree = required(values.tree, '--tree');
  const newRootOut = required(values['new-root-out'], '--new-root-out');
  const overlapDays = optionalInteger(values['overlap-days'], '--overlap-days');
  const expiresInDays = optionalInteger(values['expires-days'], '--expires-days');
  const rootKeyPem = await readOfflineRootKey(
    values.ca,
    keysDir,
    'a new root is vouched for by the current release root itself',
  );
  const keys = await loadKeys(keysDir);
  const rotated = await rotateRoot({
    tree,
    keys,
    rootKeyPem,
    newRootOut,
    ...(overlapDays === undefined ? {} : { overlapDays }),
    ...(expiresInDays === undefined ? {} : { expiresInDays }),
  });
  io.out(`new release root ${rotated.newRootCertPath} (SHA-256 ${rotated.digest})`);
  io.out(`  its private key: ${rotated.newRootKeyPath} — move it offline now`);
  io.out(
    `  rotation written to ${rotated.rotationPath}: the current root is accepted until ${rotated.overlapUntil}`,
  );
  io.out(
    rotated.compat
      ? `  ${rotated.compatPath}: re-signed with the rotation, serial ${rotated.compat.serial}, expires ${rotated.compat.expires}`
      : '  no compat.yaml in the tree yet: the next build carries the rotation',
  );
}

async function signCommand(args: string[], io: Io): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { keys: { type: 'string' } },
  });
  const keysDir = required(values.keys, '--keys');
  if (positionals.length !== 1) throw new UsageError('sign needs exactly one FILE');
  const file = positionals[0]!;
  const keys = await loadKeys(keysDir);
  let document: Buffer;
  try {
    document = await fs.readFile(file);
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  // A document signed for a tree carries the tree's revocation list, as build's do.
  const tree = path.dirname(file);
  const rootRotation = await readTreeRotation(tree, keys.root.certPem);
  const revocations = await readTreeRevocations(tree, listRootsPem(rootRotation, keys.root.certPem));
  await writeFileAtomic(
    `${file}.sig`,
    signDocument(document, keys, {
      ...(revocations ? { revocations: revocations.signed } : {}),
      ...(rootRotation ? { rootRotation: rootRotation.signed } : {}),
    }),
  );
  io.out(`signed ${file} → ${file}.sig`);
}

async function verifyCommand(args: string[], io: Io): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: { roots: { type: 'string' }, tree: { type: 'string' }, 'skip-artifacts': { type: 'boolean' } },
  });
  const rootsFile = required(values.roots, '--roots');
  let trustedRootsPem: string;
  try {
    trustedRootsPem = await fs.readFile(rootsFile, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${rootsFile}: ${(e as Error).message}`);
  }
  const result = await verifyTree({
    tree: required(values.tree, '--tree'),
    trustedRootsPem,
    checkArtifacts: !(values['skip-artifacts'] ?? false),
  });
  const c = result.compat;
  io.out(
    `compat.yaml: valid, schema ${c.schema}, serial ${c.serial}, published ${c.published}, expires ${c.expires}`,
  );
  io.out(`signed by ${result.signer}`);
  io.out(`chain: ${result.chain.map((s) => `"${s}"`).join(' ← ')}`);
  for (const platform of PLATFORMS) {
    const entry = c.platforms[platform];
    if (!entry) continue;
    io.out(`${platform}: ${entry.release.version} (updates from ${entry.release.minSourceVersion} or later)`);
    const r = entry.release.rollout;
    if (r) io.out(`  staged rollout: offered to ${r.percent} % of the appliances (salt ${r.salt})`);
    const w = entry.release.withdrawn;
    if (w) io.out(`  withdrawn: ${w.reason} (offered to no appliance)`);
    for (const [role, a] of Object.entries(entry.release.artifacts))
      io.out(`  ${role}: ${a.path} ${a.size} bytes sha256 ${a.sha256}`);
    for (const ct of entry.containers) io.out(`  container ${ct.name} ${ct.version}: ${ct.image}`);
  }
  io.out(
    values['skip-artifacts']
      ? 'artifacts: not checked'
      : `artifacts: ${new Set(result.artifacts.map((a) => a.artifact.path)).size} files present with matching size and SHA-256`,
  );
  if (!values['skip-artifacts'] && result.chunkIndexes > 0)
    io.out(`chunk indexes: ${result.chunkIndexes} present and matching their artifacts (packs too)`);
}

/** The `--platform` values: at least one, each known, without repeats. */
function platformsOf(values: string[] | undefined): Platform[] {
  const platforms = values ?? [];
  if (platforms.length === 0) throw new UsageError('--platform is required (one or more)');
  for (const p of platforms)
    if (!isPlatform(p)) throw new UsageError(`--platform ${p}: expected one of ${PLATFORMS.join(', ')}`);
  return [...new Set(platforms)] as Platform[];
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

/** A percentage as typed: 0 to 100, at most two decimals (the schema checks it again). */
function percentOf(value: string, flag: string): number {
  const n = Number(value);
  if (!/^[0-9]{1,3}(?:\.[0-9]{1,2})?$/.test(value) || n > 100)
    throw new UsageError(`${flag} ${value}: expected a percentage from 0 to 100, such as 10 or 12.5`);
  return n;
}

function optionalInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) throw new UsageError(`${flag} ${value}: expected a whole number`);
  return Number(value);
}
