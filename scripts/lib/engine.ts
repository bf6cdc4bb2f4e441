/**
 * A private Podman engine for development and tests: its own containers.conf and storage.conf,
 * storage, run and temp directories under one directory, and `podman system service` answering
 * the Docker-compatible API on `<dir>/podman.sock` (DESIGN.md §4). Nothing of it touches the
 * machine's own Podman state (/var/lib/containers, /run/libpod, the shm lock segment), so several
 * engines — parallel test files — run side by side.
 *
 * Library: `startEngineIn(dir)`, `stopEngineIn(dir)`, `engineUnavailable()`. CLI (through
 * `scripts/engine`):
 *   scripts/engine start DIR   starts the engine (unless it runs), prints the socket path
 *   scripts/engine stop DIR    stops its containers and the engine, unmounts what it mounted
 */
import { spawn } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from '@clgw/core/platform/exec.js';

export interface EngineHandle {
  /** The engine's directory (configuration, storage, socket, log). */
  dir: string;
  /** The unix socket of the Docker-compatible API. */
  socket: string;
  /** Pid of `podman system service`. */
  pid: number;
  /** Stops the containers and the engine and unmounts its storage (the directory stays). */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Keep running after this process exits (the CLI); tests keep the engine as their child. */
  detached?: boolean;
  /** How long to wait for `GET /_ping` to answer (default 30 s). */
  timeoutMs?: number;
}

/** The files and settings of an engine directory. */
export function enginePaths(dir: string) {
  const d = path.resolve(dir);
  return {
    dir: d,
    socket: path.join(d, 'podman.sock'),
    containersConf: path.join(d, 'containers.conf'),
    storageConf: path.join(d, 'storage.conf'),
    root: path.join(d, 'root'),
    runroot: path.join(d, 'runroot'),
    tmp: path.join(d, 'tmp'),
    pidFile: path.join(d, 'podman.pid'),
    log: path.join(d, 'podman.log'),
  };
}

/** Statfs magic of overlayfs: overlay storage cannot sit on top of another overlay. */
const OVERLAYFS_MAGIC = 0x794c7630;

/**
 * The storage driver: `overlay` where the kernel has it and the directory is not itself on
 * overlayfs (a container's root) — a container then starts without copying its image; else
 * `vfs`, which copies every layer per container but works anywhere. `CLGW_ENGINE_DRIVER` forces one.
 */
async function storageDriver(dir: string): Promise<'overlay' | 'vfs'> {
  const forced = process.env.CLGW_ENGINE_DRIVER;
  if (forced === 'overlay' || forced === 'vfs') return forced;
  const filesystems = await fs.readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\toverlay$/m.test(filesystems)) return 'vfs';
  const st = await fs.statfs(dir);
  return st.type === OVERLAYFS_MAGIC ? 'vfs' : 'overlay';
}

/** TOML basic string. */
function q(s: string): string {
  return JSON.stringify(s);
}

/**
 * Writes the engine's configuration. Why each setting:
 * - `runtime = "runc"`: the default crun fails on these machines (DESIGN.md §4);
 * - `default_ulimits`: the defaults (taken from the host's hard limits) fail here as well;
 * - `cgroup_manager = "cgroupfs"`: no systemd/D-Bus needed;
 * - `events_logger = "file"`: no journald needed; events stay in the directory;
 * - `lock_type = "file"` and `tmp_dir`: locks and run state private to this engine — the default
 *   shm segment and /run/libpod are shared by every Podman on the machine, and a new engine's
 *   first start frees all shm locks;
 * - `network_config_dir`, `volume_path`, `image_copy_tmp_dir`: nothing written outside `dir`;
 * - `log_driver = "k8s-file"`: container logs readable through the API without journald.
 */
export async function writeEngineConf(dir: string): Promise<void> {
  const p = enginePaths(dir);
  for (const d of [p.dir, p.root, p.runroot, p.tmp, path.join(p.dir, 'networks')]) {
    await fs.mkdir(d, { recursive: true });
  }
  const containers = [
    '# Written by scripts/lib/engine.ts: a private Podman engine (DESIGN.md §4).',
    '[containers]',
    'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]',
    'log_driver = "k8s-file"',
    '',
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = ${q(path.join(p.dir, 'events.log'))}`,
    'lock_type = "file"',
    `tmp_dir = ${q(path.join(p.runroot, 'libpod'))}`,
    `volume_path = ${q(path.join(p.root, 'volumes'))}`,
    `image_copy_tmp_dir = ${q(p.tmp)}`,
    '',
    '[network]',
    `network_config_dir = ${q(path.join(p.dir, 'networks'))}`,
    '',
  ].join('\n');
  const storage = [
    '# Written by scripts/lib/engine.ts: the private engine storage.',
    '[storage]',
    `driver = ${q(await storageDriver(p.dir))}`,
    `graphroot = ${q(p.root)}`,
    `runroot = ${q(p.runroot)}`,
    '',
  ].join('\n');
  await fs.writeFile(p.containersConf, containers);
  await fs.writeFile(p.storageConf, storage);
}

/** The environment every podman process of the engine runs with. */
export function engineEnv(dir: string): NodeJS.ProcessEnv {
  const p = enginePaths(dir);
  return {
    ...process.env,
    CONTAINERS_CONF: p.containersConf,
    CONTAINERS_STORAGE_CONF: p.storageConf,
    // The compat API buffers an uploaded image archive in a temp file before loading it.
    TMPDIR: p.tmp,
  };
}

/** `podman` with the engine's private storage. */
function podman(dir: string, args: string[], timeoutMs = 60_000) {
  const p = enginePaths(dir);
  return execFile('podman', ['--root', p.root, '--runroot', p.runroot, ...args], {
    env: engineEnv(dir),
    timeoutMs,
  });
}

/** `GET /_ping` on the socket; resolves true on `200 OK`. */
export function ping(socket: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Starts the engine in `dir` (created if missing) and waits until it answers `GET /_ping`. An
 * engine already running there is reused.
 */
export async function startEngineIn(dir: string, opts: StartOptions = {}): Promise<EngineHandle> {
  const p = enginePaths(dir);
  const handle = (pid: number): EngineHandle => ({
    dir: p.dir,
    socket: p.socket,
    pid,
    stop: () => stopEngineIn(p.dir),
  });
  const running = await readPid(p.pidFile);
  if (running && alive(running) && (await ping(p.socket))) return handle(running);

  await writeEngineConf(p.dir);
  await fs.rm(p.socket, { force: true });
  const log = await fs.open(p.log, 'a');
  const child = spawn(
    'podman',
    ['--root', p.root, '--runroot', p.runroot, 'system', 'service', '--time=0', `unix://${p.socket}`],
    { env: engineEnv(p.dir), stdio: ['ignore', log.fd, log.fd], detached: opts.detached ?? false },
  );
  await log.close();
  let exited: string | undefined;
  const spawnError = new Promise<never>((_, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        new Error(
          e.code === 'ENOENT' ? 'podman is not installed (scripts/setup containers)' : `podman: ${e.message}`,
          { cause: e },
        ),
      );
    });
  });
  spawnError.catch(() => undefined);
  child.once('exit', (code, signal) => {
    exited = signal ? `signal ${signal}` : `status ${code}`;
  });
  if (opts.detached) child.unref();

  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const up = await Promise.race([ping(p.socket, 1000), spawnError]);
    if (up) break;
    if (exited || Date.now() > end) {
      const tail = (await fs.readFile(p.log, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
      if (!exited) child.kill('SIGKILL');
      throw new Error(
        `podman system service in ${p.dir} ${exited ? `exited (${exited})` : 'did not answer on its socket'}` +
          (tail ? `:\n${tail}` : ''),
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  await fs.writeFile(p.pidFile, `${child.pid}\n`);
  return handle(child.pid!);
}

/**
 * Stops every container of the engine, the engine, and unmounts whatever is still mounted under
 * `dir` (the overlay driver's private bind mount of its home outlives the service). Safe to run
 * twice and on a directory whose engine died.
 */
export async function stopEngineIn(dir: string): Promise<void> {
  const p = enginePaths(dir);
  const exists = await fs.stat(p.containersConf).then(
    () => true,
    () => false,
  );
  // Containers outlive the service (conmon holds them), so stop them first; their rootfs unmounts.
  if (exists) await podman(p.dir, ['stop', '--all', '--time', '5'], 120_000).catch(() => undefined);
  const pid = await readPid(p.pidFile);
  if (pid && alive(pid)) {
    process.kill(pid, 'SIGTERM');
    const end = Date.now() + 10_000;
    while (alive(pid) && !isZombie(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    if (alive(pid) && !isZombie(pid)) process.kill(pid, 'SIGKILL');
  }
  // Conmon runs `podman container cleanup` when a container stops; it mounts the storage again.
  const end = Date.now() + 15_000;
  while (processesUsing(p.dir).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  for (const mountPoint of mountsUnder(p.dir)) {
    await execFile('umount', ['--lazy', mountPoint]).catch(() => undefined);
  }
  await fs.rm(p.pidFile, { force: true });
  await fs.rm(p.socket, { force: true });
}

/** A child that exited but was not yet reaped still answers kill(pid, 0). */
function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Live processes (other than this one) whose command line names a path under `dir`: conmon, cleanups. */
function processesUsing(dir: string): number[] {
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return pids.map(Number).filter((pid) => {
    if (pid === process.pid || isZombie(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`);
    } catch {
      return false;
    }
  });
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo, octal escapes undone). */
function mountsUnder(dir: string): string[] {
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * Why a private Podman engine truly cannot run on this machine, or undefined when it can. A
 * missing `podman` is not such a reason: scripts/setup installs it, and starting then fails loudly.
 */
export async function engineUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `Podman containers need Linux (this is ${process.platform})`;
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return `the private Podman engine runs rootful and needs root (running as uid ${uid})`;
  const cgroups = await fs.readdir('/sys/fs/cgroup').catch(() => [] as string[]);
  if (cgroups.length === 0) return 'no cgroup filesystem at /sys/fs/cgroup: runc cannot start containers';
  return undefined;
}

async function main(argv: string[]): Promise<void> {
  const [command, dir, ...rest] = argv;
  if (!dir || rest.length || (command !== 'start' && command !== 'stop')) {
    throw new Error('usage: scripts/engine start|stop DIR');
  }
  if (command === 'start') {
    const started = Date.now();
    const engine = await startEngineIn(dir, { detached: true });
    process.stdout.write(`${engine.socket}\n`);
    process.stderr.write(
      `scripts/engine: podman (pid ${engine.pid}) answers in ${Date.now() - started} ms; log ${enginePaths(dir).log}\n`,
    );
  } else {
    await stopEngineIn(dir);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`scripts/engine: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
