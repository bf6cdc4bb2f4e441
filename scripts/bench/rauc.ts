/**
 * RAUC 1.8 (Debian `rauc`) as the full-install peer, installing the same root image into a
 * file-backed raw slot. Its configuration lives in scripts/bench/rauc/: system.conf (custom
 * bootloader backend, two raw slots that are files), bootloader-backend.sh, manifest.raucm (the
 * bundle recipe) and dbus-session.conf (a private bus).
 *
 *   bundle   openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=clgw-bench-rauc …  (dev cert)
 *            rauc bundle --cert=cert.pem --key=key.pem --keyring=cert.pem CONTENT TREE/rauc/root.raucb
 *            (format plain: Debian's 1.8 is built without streaming, and verity needs device-mapper,
 *            which this machine lacks)
 *   service  dbus-daemon --config-file=dbus-session.conf --nofork --print-address
 *            DBUS_STARTER_BUS_TYPE=session DBUS_SESSION_BUS_ADDRESS=… TMPDIR=RUN/tmp
 *              unshare --mount … rauc service --conf=RUN/system.conf --mount=RUN/mnt
 *              --override-boot-slot=A           (in a mount namespace trusting the mirror's CA)
 *   install  rauc install https://MIRROR/rauc/root.raucb
 *            RAUC downloads the bundle itself (libcurl) from the same HTTPS mirror as the agent,
 *            checks its signature over the whole bundle, loop-mounts it, copies the image into
 *            slot rootfs.1 and fsyncs it, and switches the primary slot through the backend.
 *
 * Timed: `rauc install` from start to exit (it returns once the service reports completion).
 * The slot is then checked to hold exactly the image.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs, type WriteStream } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import type { Mirror } from '../lib/mirror.js';
import {
  BenchBroken,
  describeRun,
  exists,
  inMirrorTrust,
  makeSlotFile,
  PEERS_DIR,
  renderTemplate,
  runTimed,
  say,
  seconds,
  settle,
  sha256Prefix,
  spawnTracked,
  stopChild,
  treeCpuSeconds,
  vmHwmKiB,
} from './common.js';

const RAUC_DIR = path.join(PEERS_DIR, 'rauc');
const INSTALL_TIMEOUT_MS = 20 * 60 * 1000;

/** A self-signed development certificate for signing and checking the bundle (kept, reused). */
async function devCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if ((await exists(cert)) && (await exists(key))) return { cert, key };
  await fs.mkdir(dir, { recursive: true });
  await execFile('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '3650',
    '-subj',
    '/O=clgw development/CN=clgw-bench-rauc',
  ]);
  return { cert, key };
}

export interface RaucBundle {
  file: string;
  /** Its URL path on the mirror. */
  urlPath: string;
  cert: string;
  bytes: number;
}

/**
 * `rauc bundle` of the image as the raw image of slot class rootfs, written into the mirror's
 * tree; reused while the image, the manifest recipe and the certificate are the same.
 */
export async function ensureRaucBundle(o: {
  tree: string;
  image: string;
  imageSha256: string;
  version: string;
  workDir: string;
}): Promise<RaucBundle> {
  const { cert, key } = await devCert(path.join(o.workDir, 'keys'));
  const file = path.join(o.tree, 'rauc', 'root.raucb');
  const manifest = await renderTemplate(path.join(RAUC_DIR, 'manifest.raucm'), {
    VERSION: o.version,
    IMAGE: 'root.img',
  });
  const stampFile = path.join(o.workDir, 'bundle.json');
  const stamp = JSON.stringify({
    image: o.imageSha256,
    manifest: createHash('sha256').update(manifest).digest('hex'),
    cert: createHash('sha256')
      .update(await fs.readFile(cert))
      .digest('hex'),
  });
  if ((await fs.readFile(stampFile, 'utf8').catch(() => '')) !== stamp || !(await exists(file))) {
    const t0 = process.hrtime.bigint();
    const content = path.join(o.workDir, 'content');
    await fs.rm(content, { recursive: true, force: true });
    await fs.mkdir(content, { recursive: true });
    // A hard link, not a copy: same filesystem (.cache/bench), and rauc only reads it.
    await fs.link(o.image, path.join(content, 'root.img'));
    await fs.writeFile(path.join(content, 'manifest.raucm'), manifest);
    await fs.rm(file, { force: true });
    await fs.mkdir(path.dirname(file), { recursive: true });
    const r = await runTimed(
      'rauc',
      ['bundle', `--cert=${cert}`, `--key=${key}`, `--keyring=${cert}`, content, file],
      { timeoutMs: INSTALL_TIMEOUT_MS },
    );
    await fs.rm(content, { recursive: true, force: true });
    if (r.code !== 0) throw new BenchBroken(describeRun('rauc bundle', r));
    await writeFileAtomic(stampFile, stamp);
    say(`prepare: rauc bundle ${path.relative(path.dirname(o.tree), file)} in ${seconds(t0).toFixed(1)} s`);
  }
  return {
    file,
    urlPath: `/${path.relative(o.tree, file).split(path.sep).join('/')}`,
    cert,
    bytes: (await fs.stat(file)).size,
  };
}

export interface RaucSample {
  seconds: number;
  /** From the service's log: download, then signature check and mount, then the slot copy. */
  phases?: { downloadSeconds: number; checkSeconds: number; copySeconds: number };
  /** Body bytes the mirror served for the bundle. */
  bytes: number;
  /**
   * User+system CPU-seconds of RAUC's process tree during the install: the `rauc install` client,
   * and the growth of `rauc service`'s and its private dbus-daemon's own and waited-for children's
   * CPU (/proc/PID/stat) — the service forks its helpers (mount, the bootloader backend) and waits.
   */
  cpuSeconds: number;
}

export interface RaucPeer {
  install(run: number): Promise<RaucSample>;
  /** Peak RSS of `rauc service` so far, KiB. */
  peakRssKiB(): Promise<number>;
  stop(): Promise<void>;
}

/** Waits for the first line a child prints on stdout. */
function firstLine(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new BenchBroken(`${what}: no address within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new BenchBroken(`${what} exited (${code}) before printing its address`));
    });
  });
}

/** Milliseconds of a `rauc-Message: HH:MM:SS.mmm: …` line (time of day; one install is short). */
function messageTimes(log: string): { at: number; text: string }[] {
  const out: { at: number; text: string }[] = [];
  for (const m of log.matchAll(/^rauc-Message: (\d\d):(\d\d):(\d\d)\.(\d\d\d): (.*)$/gm))
    out.push({
      at: ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]),
      text: m[5]!,
    });
  return out;
}

/**
 * Starts a private D-Bus and `rauc service` in `runDir` for slot files of `slotBytes`. Needs
 * root (RAUC loop-mounts the bundle).
 */
export async function startRauc(o: {
  runDir: string;
  slotBytes: number;
  trustDir: string;
  cert: string;
  mirror: Mirror;
  bundle: RaucBundle;
  imageBytes: number;
  imageSha256: string;
  /** Run the service (which does the download) inside this network namespace. */
  netns?: string;
  /** The mirror's base URL as RAUC is to use it (default `mirror.url`). */
  baseUrl?: string;
}): Promise<RaucPeer> {
  const dir = o.runDir;
  await fs.rm(dir, { recursive: true, force: true });
  for (const d of ['slots', 'state', 'boot', 'mnt', 'tmp'])
    await fs.mkdir(path.join(dir, d), { recursive: true });
  const socket = path.join(dir, 'bus');
  await fs.writeFile(
    path.join(dir, 'dbus-session.conf'),
    await renderTemplate(path.join(RAUC_DIR, 'dbus-session.conf'), { SOCKET: socket }),
  );
  const systemConf = path.join(dir, 'system.conf');
  await fs.writeFile(
    systemConf,
    await renderTemplate(path.join(RAUC_DIR, 'system.conf'), {
      DIR: dir,
      BACKEND: path.join(RAUC_DIR, 'bootloader-backend.sh'),
      KEYRING: o.cert,
    }),
  );
  // Slot A is "booted" and never written; slot B (rootfs.1) is recreated before each install.
  await makeSlotFile(path.join(dir, 'slots/rootfs.0'), 4096);

  const dbus = spawnTracked(
    'dbus-daemon',
    [`--config-file=${path.join(dir, 'dbus-session.conf')}`, '--nofork', '--print-address'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let service: ChildProcess | undefined;
  let log: WriteStream | undefined;
  const stop = async () => {
    if (service) await stopChild(service);
    await stopChild(dbus);
    log?.end();
  };
  try {
    const address = await firstLine(dbus, 'dbus-daemon', 10_000);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DBUS_STARTER_BUS_TYPE: 'session',
      DBUS_SESSION_BUS_ADDRESS: address,
      TMPDIR: path.join(dir, 'tmp'),
      CLGW_BENCH_RAUC_STATE: path.join(dir, 'boot'),
    };
    const logFile = path.join(dir, 'service.log');
    log = createWriteStream(logFile);
    const [trustBin, trustArgs] = inMirrorTrust(o.trustDir, 'rauc', [
      'service',
      `--conf=${systemConf}`,
      `--mount=${path.join(dir, 'mnt')}`,
      '--override-boot-slot=A',
    ]);
    // `ip netns exec` execs its command as unshare and sh do: svc.pid ends up being rauc's.
    const [bin, args] = o.netns
      ? ['ip', ['netns', 'exec', o.netns, trustBin, ...trustArgs]]
      : [trustBin, trustArgs];
    const svc = spawnTracked(bin as string, args as string[], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    service = svc;
    svc.stdout?.pipe(log, { end: false });
    svc.stderr?.pipe(log, { end: false });
    const tail = async () =>
      (await fs.readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join(' | ');

    // Ready once it owns its name on the bus.
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (svc.exitCode !== null || svc.signalCode !== null)
        throw new BenchBroken(`rauc service exited (${svc.exitCode ?? svc.signalCode}): ${await tail()}`);
      const r = await runTimed(
        'dbus-send',
        [
          `--bus=${address}`,
          '--print-reply',
          '--dest=org.freedesktop.DBus',
          '/org/freedesktop/DBus',
          'org.freedesktop.DBus.NameHasOwner',
          'string:de.pengutronix.rauc',
        ],
        { timeoutMs: 10_000 },
      );
      if (r.code === 0 && /boolean true/.test(r.stdout)) break;
      if (Date.now() > deadline)
        throw new BenchBroken(`rauc service did not appear on its bus within 20 s: ${await tail()}`);
      await new Promise((res) => setTimeout(res, 200));
    }

    const slotB = path.join(dir, 'slots/rootfs.1');
    const url = `${o.baseUrl ?? o.mirror.url}${o.bundle.urlPath}`;
    const serviceCpu = async () =>
      (svc.pid ? await treeCpuSeconds(svc.pid) : 0) + (dbus.pid ? await treeCpuSeconds(dbus.pid) : 0);
    return {
      async install(run: number): Promise<RaucSample> {
        await makeSlotFile(slotB, o.slotBytes);
        await settle();
        const logStart = (await fs.stat(logFile)).size;
        o.mirror.resetStats();
        const cpu0 = await serviceCpu();
        const r = await runTimed('rauc', ['install', url], { env, timeoutMs: INSTALL_TIMEOUT_MS });
        const cpuSeconds = r.cpuSeconds + (await serviceCpu()) - cpu0;
        const bytes = o.mirror.stats(o.bundle.urlPath).bytes;
        if (r.code !== 0)
          throw new BenchBroken(
            `${describeRun(`rauc install ${url} (run ${run})`, r)}; service: ${await tail()}`,
          );
        const digest = await sha256Prefix(slotB, o.imageBytes);
        if (digest !== o.imageSha256)
          throw new BenchBroken(
            `rauc install (run ${run}): ${slotB} holds sha256 ${digest}, the image is ${o.imageSha256}`,
          );
        const text = (await fs.readFile(logFile, 'utf8')).slice(logStart);
        const times = messageTimes(text);
        // Each step's first line after the previous step's.
        const at = (re: RegExp, after = -1) => times.find((t) => t.at >= after && re.test(t.text))?.at;
        const dl = at(/^Remote URI detected/);
        const read = at(/^Reading bundle/, dl);
        const write = at(/^writing data to device/, read);
        const done = at(/Updating slot .* status|Marking target slot .* as bootable/, write);
        const phases =
          dl !== undefined && read !== undefined && write !== undefined && done !== undefined && done >= dl
            ? {
                downloadSeconds: (read - dl) / 1000,
                checkSeconds: (write - read) / 1000,
                copySeconds: (done - write) / 1000,
              }
            : undefined;
        return { seconds: r.seconds, bytes, cpuSeconds, ...(phases ? { phases } : {}) };
      },
      peakRssKiB: () => (svc.pid ? vmHwmKiB(svc.pid) : Promise.resolve(0)),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
