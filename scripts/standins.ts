/**
 * Stand-in images of the appliance's services (tunnel, micloud, freeswitch), built without a
 * container engine, in TypeScript, deterministically: the same inputs give a byte-identical
 * docker-archive tar (node-tar, portable: no owners, mtime 0, explicit modes, sorted entries;
 * canonical JSON). Each image is one layer holding Debian's static busybox and a small sh
 * script that serves `GET /health` ("ok", unless built broken) and `GET /version` ("<service>
 * <version>") with busybox httpd on 127.0.0.1:$PORT — enough for the container upgrade to load,
 * start, health-check and roll back real containers.
 *
 * The freeswitch stand-in also answers FreeSWITCH's event socket (ESL) on 127.0.0.1:$ESL_PORT
 * (default 8021, password $ESL_PASSWORD, default ClueCon), as much of it as the agent's
 * `activeCalls` asks: `/standin/esl`, a small C program (scripts/standins/esl-standin.c — a
 * stand-in, not FreeSWITCH) compiled static when the image is built and cached in
 * .cache/standins by what makes its bytes (source, compiler, flags, static libc). Its call count
 * is the number in the container's /www/calls (0 at start); a test sets it with
 *   podman exec CONTAINER /bin/busybox sh -c 'echo 2 > /www/calls'
 * (through the engine's own `--root`/`--runroot`, scripts/lib/engine.ts). Give each container its
 * own ESL_PORT: the containers share the host's network, and a taken port stops the container.
 *
 * Library: `buildStandin({ service, version, broken, out })`, `eslStandin()` (the compiled event
 * socket program). CLI:
 *   npx tsx scripts/standins.ts --out DIR [--broken] [--version V] [service...]
 * prints one JSON line per archive ({file, reference, sha256, size, imageId}).
 */
import { execFile as execFileCb } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { create as createTar } from 'tar';

export const STANDIN_SERVICES = ['tunnel', 'micloud', 'freeswitch'] as const;
export type StandinService = (typeof STANDIN_SERVICES)[number];

/** The port each stand-in serves on when the container's env has no `PORT`. */
export const STANDIN_DEFAULT_PORTS: Record<StandinService, number> = {
  tunnel: 8081,
  micloud: 8082,
  freeswitch: 8083,
};

/** Where Debian's busybox-static puts its binary (scripts/setup, group `containers`). */
export const DEFAULT_BUSYBOX = '/bin/busybox';

export interface StandinOptions {
  service: StandinService;
  version: string;
  /** Built broken: starts and answers `/version`, but `/health` is 404 (env STANDIN_BROKEN=1). */
  broken?: boolean;
  /** Directory the archive is written to (created if missing). */
  out: string;
  /** The static busybox to put into the image (default /bin/busybox). */
  busybox?: string;
  /** Where the compiled event socket program is cached (default `<repo>/.cache/standins`). */
  cacheDir?: string;
}

export interface StandinArchive {
  /** `<out>/<service>-standin-<version>[-broken].tar` */
  file: string;
  /** `localhost/<service>-standin:<version>` — what the engine reports after loading. */
  reference: string;
  /** sha256 (hex) of the archive file. */
  sha256: string;
  /** Size of the archive file in bytes. */
  size: number;
  /** `sha256:<hex>` of the image config: the ID the engine gives the loaded image. */
  imageId: string;
}

/** A Docker tag (the part after `:`); stricter than compat.yaml versions, which allow `+`. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * The stand-in's program. PID 1 is this shell: it traps SIGTERM so `stop` ends the container at
 * once instead of waiting for the kill (httpd as PID 1 would ignore SIGTERM). No symlinks in the
 * image, so every tool is called as a busybox applet; `echo`/`printf`/`test`/`kill` are shell
 * builtins. The freeswitch stand-in runs the event socket beside httpd; either one ending ends
 * the container (as httpd alone did), so a dead listener shows as a failed container, not as a
 * healthy one that cannot answer.
 */
const RUN_SH = `# clgw stand-in service (scripts/standins.ts): serves /health and /version on 127.0.0.1:$PORT;
# the freeswitch stand-in also an event socket (a stand-in, not FreeSWITCH) on 127.0.0.1:\${ESL_PORT:-8021}.
bb=/bin/busybox
port="\${PORT:?PORT is not set}"
$bb mkdir -p /www
printf '%s %s' "$STANDIN_SERVICE" "$STANDIN_VERSION" > /www/version
if [ "\${STANDIN_BROKEN:-0}" = 1 ]; then
  $bb rm -f /www/health
  state=broken
else
  printf 'ok' > /www/health
  state=healthy
fi
echo "standin $STANDIN_SERVICE $STANDIN_VERSION ($state) listening on 127.0.0.1:$port"
$bb httpd -f -vv -p "127.0.0.1:$port" -h /www 2>&1 &
pid=$!
esl=
if [ "$STANDIN_SERVICE" = freeswitch ]; then
  # The call count the event socket reports, read at each question; tests change it (podman exec).
  echo 0 > /www/calls
  /standin/esl /www/calls 2>&1 &
  esl=$!
fi
trap 'echo "standin $STANDIN_SERVICE: stopping"; $bb kill $pid $esl; exit 0' TERM INT
if [ -z "$esl" ]; then
  wait $pid
  status=$?
  echo "standin $STANDIN_SERVICE: httpd exited with status $status"
  exit $status
fi
# busybox ash has no \`wait -n\`: look every second whether both still run. A TERM interrupts the
# wait for the sleep, so stopping stays immediate.
while kill -0 $pid 2>/dev/null && kill -0 $esl 2>/dev/null; do
  $bb sleep 1 &
  wait $!
done
if kill -0 $pid 2>/dev/null; then
  what=esl dead=$esl other=$pid
else
  what=httpd dead=$pid other=$esl
fi
wait $dead
status=$?
echo "standin $STANDIN_SERVICE: $what exited with status $status"
kill $other 2>/dev/null
exit $status
`;

/** Builds one stand-in image archive; see the module comment. */
export async function buildStandin(opts: StandinOptions): Promise<StandinArchive> {
  const { service, version } = opts;
  if (!(STANDIN_SERVICES as readonly string[]).includes(service)) {
    throw new Error(`unknown stand-in service '${service}' (known: ${STANDIN_SERVICES.join(', ')})`);
  }
  if (!TAG.test(version)) {
    throw new Error(`version '${version}' cannot be an image tag (expected ${TAG.source})`);
  }
  const busyboxFile = opts.busybox ?? DEFAULT_BUSYBOX;
  const busybox = await fs.readFile(busyboxFile).catch((e: unknown) => {
    throw new Error(
      `cannot read ${busyboxFile} (install Debian's busybox-static: scripts/setup containers)`,
      {
        cause: e,
      },
    );
  });
  if (hasInterpreter(busybox, busyboxFile)) {
    throw new Error(`${busyboxFile} is dynamically linked; the stand-in needs Debian's busybox-static`);
  }

  // Only the freeswitch stand-in has the event socket: the others need no compiler.
  const esl = service === 'freeswitch' ? await eslStandin(opts.cacheDir) : undefined;

  const name = `${service}-standin`;
  const reference = `localhost/${name}:${version}`;
  // node-tar archives files: the image's tree is laid out in a private directory first.
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-standin-'));
  try {
    const layerDir = path.join(work, 'layer');
    await lay(layerDir, [
      { name: 'bin/', mode: 0o755 },
      { name: 'bin/busybox', mode: 0o755, data: busybox },
      { name: 'standin/', mode: 0o755 },
      ...(esl ? [{ name: 'standin/esl', mode: 0o755, data: esl }] : []),
      { name: 'standin/run.sh', mode: 0o644, data: Buffer.from(RUN_SH) },
      { name: 'www/', mode: 0o755 },
    ]);
    const layer = await tar(layerDir, path.join(work, 'layer.tar'));
    const layerHex = sha256(layer);
    const env = [
      'PATH=/bin',
      `PORT=${STANDIN_DEFAULT_PORTS[service]}`,
      `STANDIN_SERVICE=${service}`,
      `STANDIN_VERSION=${version}`,
      ...(opts.broken ? ['STANDIN_BROKEN=1'] : []),
    ];
    const epoch = '1970-01-01T00:00:00Z';
    const config = json({
      architecture: goArch(process.arch),
      os: 'linux',
      created: epoch,
      config: {
        Env: env,
        Entrypoint: ['/bin/busybox', 'sh', '/standin/run.sh'],
        WorkingDir: '/',
        Labels: { 'io.clgw.standin': opts.broken ? 'broken' : 'healthy' },
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
      history: [{ created: epoch, created_by: `scripts/standins.ts ${service} ${version}` }],
    });
    const configHex = sha256(config);
    const manifest = json([
      { Config: `${configHex}.json`, RepoTags: [reference], Layers: [`${layerHex}/layer.tar`] },
    ]);
    const imageDir = path.join(work, 'image');
    await lay(imageDir, [
      { name: `${configHex}.json`, mode: 0o644, data: config },
      { name: `${layerHex}/`, mode: 0o755 },
      { name: `${layerHex}/layer.tar`, mode: 0o644, data: layer },
      { name: 'manifest.json', mode: 0o644, data: manifest },
    ]);

    await fs.mkdir(opts.out, { recursive: true });
    const file = path.join(opts.out, `${name}-${version}${opts.broken ? '-broken' : ''}.tar`);
    const temp = `${file}.${process.pid}.tmp`;
    const archive = await tar(imageDir, temp).catch(async (e: unknown) => {
      await fs.rm(temp, { force: true });
      throw e;
    });
    await fs.rename(temp, file);
    return { file, reference, sha256: sha256(archive), size: archive.length, imageId: `sha256:${configHex}` };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

const execFile = promisify(execFileCb);

/** The event socket stand-in's source, and where its compiled binary is cached by default. */
const ESL_SOURCE = fileURLToPath(new URL('./standins/esl-standin.c', import.meta.url));
const DEFAULT_CACHE = fileURLToPath(new URL('../.cache/standins', import.meta.url));

/**
 * Static (the image has no libc), optimised, and stripped: without debug information or symbols
 * no file name or temp path gets into the binary, so the same source, compiler and libc give
 * the same bytes — the archive stays reproducible.
 */
const ESL_CFLAGS = ['-std=gnu11', '-static', '-O2', '-s', '-Wall', '-Wextra'];

/**
 * The event socket stand-in (scripts/standins/esl-standin.c) compiled, from the cache when it
 * was compiled before: many tests build stand-ins, and gcc takes about a second. The cache key
 * is everything the bytes depend on: the source, the compiler's version and target, the flags
 * and the static libc linked in (libc6-dev, which an upgrade changes).
 */
export async function eslStandin(cacheDir: string = DEFAULT_CACHE): Promise<Buffer> {
  const source = await fs.readFile(ESL_SOURCE);
  const gcc = async (args: string[]) => {
    try {
      return (await execFile('gcc', args, { timeout: 120_000, maxBuffer: 1024 * 1024 })).stdout;
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      throw new Error(
        err.code === 'ENOENT'
          ? 'gcc is not installed; the freeswitch stand-in compiles its event socket (scripts/setup containers)'
          : `gcc ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`,
        { cause: e },
      );
    }
  };
  const version = await gcc(['--version']);
  const machine = await gcc(['-dumpmachine']);
  // gcc prints the bare name back when no such file is installed.
  const libcFile = (await gcc(['-print-file-name=libc.a'])).trim();
  if (!path.isAbsolute(libcFile)) {
    throw new Error('no static libc (libc.a) for gcc -static: install libc6-dev (scripts/setup containers)');
  }
  const libc = await fs.readFile(libcFile);
  const key = sha256(
    json({ source: sha256(source), version, machine, flags: ESL_CFLAGS, libc: sha256(libc) }),
  );
  const cached = path.join(cacheDir, `esl-standin-${key}`);
  const hit = await fs.readFile(cached).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new Error(`cannot read the cached event socket stand-in ${cached}`, { cause: e });
  });
  if (hit) return hit;

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-esl-'));
  try {
    const binary = path.join(work, 'esl');
    await gcc([...ESL_CFLAGS, '-o', binary, ESL_SOURCE]);
    const data = await fs.readFile(binary);
    if (hasInterpreter(data, binary)) throw new Error(`gcc -static gave a dynamically linked ${binary}`);
    // Written aside and renamed: test workers building at once never read a half-written file.
    await fs.mkdir(cacheDir, { recursive: true });
    const temp = `${cached}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.writeFile(temp, data);
    await fs.rename(temp, cached);
    return data;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

interface TarEntry {
  /** Relative path; a trailing `/` makes a directory. */
  name: string;
  mode: number;
  data?: Buffer;
}

/**
 * Writes `entries` under `dir` (created), each with exactly its mode (the umask must not decide
 * what the image holds). Parents come before their children in `entries`.
 */
async function lay(dir: string, entries: readonly TarEntry[]): Promise<void> {
  await fs.mkdir(dir);
  for (const e of entries) {
    const at = path.join(dir, e.name);
    if (e.name.endsWith('/')) await fs.mkdir(at);
    else await fs.writeFile(at, e.data ?? Buffer.alloc(0), { flag: 'wx' });
    await fs.chmod(at, e.mode);
  }
}

/**
 * Archives everything under `dir` into `file` and returns the archive's bytes: entries sorted by
 * name (a directory as `name/`, before what it holds), portable (owner 0:0 without names, no atime
 * or ctime), mtime 0 — reproducible by construction.
 */
async function tar(dir: string, file: string): Promise<Buffer> {
  const names: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const rel = path.relative(dir, path.join(e.parentPath, e.name));
    names.push(e.isDirectory() ? `${rel}/` : rel);
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  await createTar(
    { file, cwd: dir, portable: true, mtime: new Date(0), noDirRecurse: true, strict: true },
    names,
  );
  return fs.readFile(file);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** The OCI architecture name of Node's `process.arch`. */
function goArch(arch: string): string {
  return arch === 'x64' ? 'amd64' : arch === 'ia32' ? '386' : arch;
}

/** Whether an ELF file asks for a dynamic loader (has a PT_INTERP program header). */
function hasInterpreter(elf: Buffer, file: string): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const phoff = is64 ? Number(le ? elf.readBigUInt64LE(32) : elf.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) break;
    if (u32(at) === 3) return true; // PT_INTERP
  }
  return false;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      version: { type: 'string', default: '1.0.0' },
      broken: { type: 'boolean', default: false },
      busybox: { type: 'string' },
    },
  });
  if (!values.out) {
    throw new Error('usage: scripts/standins.ts --out DIR [--broken] [--version V] [service...]');
  }
  const services = positionals.length ? positionals : [...STANDIN_SERVICES];
  for (const s of services) {
    if (!(STANDIN_SERVICES as readonly string[]).includes(s)) {
      throw new Error(`unknown service '${s}' (known: ${STANDIN_SERVICES.join(', ')})`);
    }
    const built = await buildStandin({
      service: s as StandinService,
      version: values.version,
      broken: values.broken,
      out: values.out,
      ...(values.busybox ? { busybox: values.busybox } : {}),
    });
    process.stdout.write(`${JSON.stringify(built)}\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`scripts/standins.ts: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
