/**
 * `make demo`: a simulated CloudLink Gateway updates itself from a local HTTPS mirror — A → B,
 * reboot, health check, commit — installs and upgrades its service containers on a real Podman
 * engine (one rolled back because the new one never gets healthy), and then rolls back a broken
 * gateway OS release. Run it as often as you like: every run starts from a freshly made factory
 * appliance.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AgentClient } from '../../agent/src/api/client.js';
import type { Status } from '../../agent/src/status.js';
import { publishContainers } from '../../image/src/release/build.js';
import {
  buildRelease,
  type DevKeys,
  ensureDevSupportCa,
  generateDevKeys,
  loadKeys,
  saveKeys,
} from '../../image/src/release/index.js';
import { startEngineIn, stopEngineIn } from '../lib/engine.js';
import { startMirror } from '../lib/mirror.js';
import { buildStandin } from '../standins.js';
import { createAppliance } from './appliance.js';
import { runAppliance } from './boot-emulator.js';
import { buildReleaseImages } from './images.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SIM = path.join(REPO, '.sim');
const ROOT = path.join(SIM, 'appliance');
const CLI = path.join(REPO, 'agent/dist/cli/clgw.js');
const PLATFORMS = ['physical', 'virtual', 'kvm'] as const;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);

function clgw(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, CLGW_ROOT: ROOT },
      stdio: 'inherit',
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

async function devKeys(): Promise<DevKeys> {
  const dir = path.join(SIM, 'keys');
  try {
    return await loadKeys(dir);
  } catch {
    const keys = generateDevKeys();
    await saveKeys(dir, keys, { overwrite: true });
    return keys;
  }
}

/** Polls the agent's status until `ready` holds (the agent may be starting or rebooting). */
async function waitForAgent(ready: (s: Status) => boolean, what: string): Promise<void> {
  const client = new AgentClient(path.join(ROOT, 'run/clgw/agent.sock'));
  for (let i = 0; i < 600; i++) {
    const s = await client.status().catch(() => undefined);
    if (s && ready(s)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within 2 minutes`);
}

async function main(): Promise<void> {
  step('Building gateway OS releases 1.0.0 (factory), 1.1.0 and a broken 1.2.0 (ext4 images, mkfs.ext4 -d)');
  const imagesDir = path.join(SIM, 'images');
  await fs.mkdir(imagesDir, { recursive: true });
  const [factory, good, broken] = await Promise.all([
    buildReleaseImages({ version: '1.0.0', outDir: imagesDir }),
    buildReleaseImages({ version: '1.1.0', outDir: imagesDir }),
    buildReleaseImages({ version: '1.2.0', outDir: imagesDir, brokenHealth: true }),
  ]);
  const keys = await devKeys();

  step('Publishing 1.1.0 to the local mirror (signed compat.yaml, served over HTTPS on loopback)');
  const tree = path.join(SIM, 'mirror');
  await fs.rm(tree, { recursive: true, force: true });
  await buildRelease({
    tree,
    keys,
    version: '1.1.0',
    platforms: [...PLATFORMS],
    boot: good.boot,
    root: good.root,
    minSourceVersion: '1.0.0',
  });
  // Loopback is far faster than a customer's link; pace the mirror so the progress is visible.
  const mirror = await startMirror({
    tree,
    tlsDir: path.join(SIM, 'tls'),
    rateBytesPerSecond: 16 * 1024 * 1024,
  });
  process.stdout.write(`mirror: ${mirror.url}\n`);

  step('Starting the container engine (Podman, private to .sim/engine) and building stand-in images');
  const engineDir = path.join(SIM, 'engine');
  await stopEngineIn(engineDir).catch(() => undefined); // a previous run's engine and containers
  await fs.rm(engineDir, { recursive: true, force: true });
  const engine = await startEngineIn(engineDir);
  process.stdout.write(`engine: ${engine.socket}\n`);
  const standins = path.join(SIM, 'standins');
  const tunnel10 = await buildStandin({ service: 'tunnel', version: '1.0.0', out: standins });
  const micloud10 = await buildStandin({ service: 'micloud', version: '1.0.0', out: standins });
  const tunnel11 = await buildStandin({ service: 'tunnel', version: '1.1.0', out: standins });
  const micloud11 = await buildStandin({ service: 'micloud', version: '1.1.0', out: standins, broken: true });

  step('Creating a factory-fresh virtual appliance in .sim/appliance (slot A: 1.0.0, slot B: empty)');
  // The development support CA beside the development release keys (.sim/keys/support-ca signs
  // support certificates: clgw-release support-cert --ca .sim/keys/support-ca …).
  const supportCa = await ensureDevSupportCa(path.join(SIM, 'keys'));
  if (supportCa.generated)
    process.stdout.write(`development support CA generated in ${path.join(SIM, 'keys')}\n`);
  await createAppliance({
    root: ROOT,
    factory,
    platform: 'virtual',
    baseUrl: mirror.url,
    releaseRootPem: keys.root.certPem,
    mirrorCaPem: mirror.caPem,
    supportCaPub: supportCa.publicKey,
    config: { engineSocket: engine.socket, containerHealthTimeoutMs: 10_000 },
  });
  const publish = (set: { name: 'tunnel' | 'micloud'; image: string; file: string }[]) =>
    publishContainers({
      tree,
      keys,
      platforms: ['virtual'],
      containers: set.map((c) => ({
        name: c.name,
        version: c.image.split(':')[1]!,
        image: c.image,
        archive: c.file,
      })),
    });

  step('Powering on: the agent checks the mirror at boot and installs 1.1.0 into slot B');
  const appliance = runAppliance({ root: ROOT });
  let failed = false;
  try {
    await waitForAgent(() => true, 'the agent to start');
    const first = await clgw(['update']);
    if (first !== 0) throw new Error(`the update to 1.1.0 did not commit (clgw exit ${first})`);
    // After the reboot into B the agent checks again at boot; let that finish first.
    await waitForAgent((s) => s.state === 'idle' && s.check?.outcome === 'upToDate', 'the boot-time check');
    await clgw(['status']);

    // The boot-time container check (nothing published yet) runs right after the OS check.
    const client = new AgentClient(path.join(ROOT, 'run/clgw/agent.sock'));
    for (let i = 0; i < 100 && (await client.containers()).running; i++)
      await new Promise((r) => setTimeout(r, 200));

    step('Publishing the service containers tunnel and micloud 1.0.0 (stand-ins) and installing them');
    await publish([
      { name: 'tunnel', image: tunnel10.reference, file: tunnel10.file },
      { name: 'micloud', image: micloud10.reference, file: micloud10.file },
    ]);
    if ((await clgw(['update', '--containers'])) !== 0) throw new Error('the containers did not install');

    step('Publishing tunnel 1.1.0 and a micloud 1.1.0 that never becomes healthy; upgrading');
    await publish([
      { name: 'tunnel', image: tunnel11.reference, file: tunnel11.file },
      { name: 'micloud', image: micloud11.reference, file: micloud11.file },
    ]);
    const containers = await clgw(['update', '--containers']);
    if (containers !== 1)
      throw new Error(`expected micloud 1.1.0 to roll back (clgw exit 1), got exit ${containers}`);

    step('Publishing a broken 1.2.0 (its health check fails after boot) and updating to it');
    await buildRelease({
      tree,
      keys,
      version: '1.2.0',
      platforms: [...PLATFORMS],
      boot: broken.boot,
      root: broken.root,
      minSourceVersion: '1.0.0',
    });
    const second = await clgw(['update']);
    if (second !== 1)
      throw new Error(`expected the broken 1.2.0 to roll back (clgw exit 1), got exit ${second}`);

    step('Final state: back on 1.1.0, the broken release remembered and not retried automatically');
    await clgw(['status']);
  } catch (e) {
    failed = true;
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
  } finally {
    await appliance.stop();
    await mirror.close();
    await stopEngineIn(engineDir); // a powered-off appliance runs no containers
  }
  step('Powered off. The state persists on the simulated data partition:');
  process.stdout.write('  CLGW_ROOT=.sim/appliance npx clgw status --json\n');
  process.stdout.write(`  agent log: ${path.relative(REPO, path.join(ROOT, 'var/log/clgw/clgw.log'))}\n`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
