/**
 * Reading a container image archive before the engine sees it (docker-archive: `manifest.json`,
 * the image's config, its layers), with node-tar. The archive's bytes are already those compat.yaml
 * signs (size and SHA-256); what this adds is knowing *which image* they hold — its tags and its
 * ID, the SHA-256 of its config, which is how the engine names it — so an archive that names
 * another image is refused before it can move a tag, and the image is identified by the digest
 * compat.yaml signs, never by a tag.
 *
 * Whatever the engine and node-tar could read differently is refused rather than guessed at:
 * compression, duplicate names, absolute or climbing paths, links leaving the archive, device
 * entries, a manifest of more than one image. The engine then gets the archive with a manifest
 * rewritten from what was checked ({@link archiveForLoad}).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Header, Pack, Parser, ReadEntry } from 'tar';
import { ClgwError, isClgwError } from '../errors.js';

/** The one image a docker-archive holds, as its manifest and config say. */
export interface ImageArchive {
  /** `sha256:<hex>`: the SHA-256 of the config entry, the image ID the engine gives it. */
  imageId: string;
  /** The manifest's `RepoTags` (what the engine would tag it as). */
  tags: string[];
  /** The manifest's own entry, as checked: passed on to the engine with other tags. */
  manifest: ManifestEntry;
}

interface ManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
  /** Docker 25's foreign-layer descriptors: passed on unchanged. */
  LayerSources?: unknown;
}

/** Entry types a docker-archive is made of; anything else (devices, FIFOs) is refused. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const ALLOWED_TYPES = new Set([...FILE_TYPES, 'Directory', 'SymbolicLink', 'Link']);
const MAX_ENTRIES = 10_000;
/** manifest.json and the config are a few KB; entries up to this size are hashed as read. */
const MAX_META_BYTES = 1024 * 1024;
const MANIFEST = 'manifest.json';
/** The legacy tag file beside manifest.json: its tags are not the ones checked, so it is dropped. */
const REPOSITORIES = 'repositories';

function invalid(file: string, why: string, details: Record<string, unknown> = {}): ClgwError {
  return new ClgwError('IMAGE_INVALID', `image archive ${file}: ${why}`, { details: { file, ...details } });
}

/** `a/./b/`, `./a/b` → `a/b`; undefined for a path that is absolute or climbs out. */
function inside(p: string): string | undefined {
  if (p.startsWith('/') || p.includes('\\')) return undefined;
  const n = path.posix.normalize(p).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../')) return undefined;
  return n === '.' ? '' : n;
}

interface Seen {
  type: string;
  size: number;
  /** Normalized target of a link (symlinks resolved against their directory). */
  target?: string;
  sha256?: string;
}

/**
 * Reads the archive once and returns the image it holds; IMAGE_INVALID (naming the file and the
 * entry) for anything that is not a plain, unambiguous docker-archive of one image.
 */
export async function inspectImageArchive(file: string): Promise<ImageArchive> {
  await requirePlainTar(file);
  const entries = new Map<string, Seen>();
  let manifestText: string | undefined;
  let problem: ClgwError | undefined;
  const refuse = (why: string, entry?: string) => {
    problem ??= invalid(file, why, entry === undefined ? {} : { entry });
  };
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const name = inside(entry.path);
      if (problem) return void entry.resume();
      if (entries.size >= MAX_ENTRIES) refuse(`more than ${MAX_ENTRIES} entries`);
      else if (!ALLOWED_TYPES.has(entry.type)) refuse(`entry ${entry.path} is a ${entry.type}`, entry.path);
      else if (name === undefined || name === '')
        refuse(`entry ${entry.path} leaves the archive`, entry.path);
      else if (entries.has(name)) refuse(`entry ${entry.path} appears twice`, entry.path);
      if (problem || name === undefined) return void entry.resume();
      const seen: Seen = { type: entry.type, size: entry.size ?? 0 };
      if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
        const linkpath = entry.linkpath ?? '';
        const target = inside(
          entry.type === 'Link' ? linkpath : path.posix.join(path.posix.dirname(name), linkpath),
        );
        if (!target || linkpath.startsWith('/'))
          refuse(`entry ${entry.path} links to ${linkpath}, outside the archive`, entry.path);
        seen.target = target;
      }
      entries.set(name, seen);
      if (!FILE_TYPES.has(entry.type) || seen.size > MAX_META_BYTES) return void entry.resume();
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => {
        hash.update(c);
        if (name === MANIFEST) chunks.push(c);
      });
      entry.on('end', () => {
        seen.sha256 = hash.digest('hex');
        if (name === MANIFEST) manifestText = Buffer.concat(chunks).toString('utf8');
      });
    },
  });
  try {
    await pipeline(createReadStream(file), parser);
  } catch (e) {
    throw isClgwError(e) ? e : invalid(file, `not a readable tar archive: ${(e as Error).message}`);
  }
  if (problem) throw problem;
  if (manifestText === undefined)
    throw invalid(file, `no ${MANIFEST} (of at most ${MAX_META_BYTES} bytes): not a docker-archive`);
  const manifest = parseManifest(file, manifestText);
  const resolve = (name: string): Seen | undefined => {
    let seen = entries.get(name);
    for (let hops = 0; seen?.target !== undefined && hops < 8; hops++) seen = entries.get(seen.target);
    return seen && FILE_TYPES.has(seen.type) ? seen : undefined;
  };
  const config = resolve(inside(manifest.Config) ?? '');
  if (!config) throw invalid(file, `the config ${manifest.Config} the manifest names is not in the archive`);
  if (config.sha256 === undefined)
    throw invalid(file, `the config ${manifest.Config} is larger than ${MAX_META_BYTES} bytes`);
  for (const layer of manifest.Layers) {
    if (!resolve(inside(layer) ?? ''))
      throw invalid(file, `the layer ${layer} the manifest names is not in the archive`);
  }
  return { imageId: `sha256:${config.sha256}`, tags: manifest.RepoTags, manifest };
}

/** The first header must be a ustar/PAX one: a compressed archive is refused, not unpacked. */
async function requirePlainTar(file: string): Promise<void> {
  const head = Buffer.alloc(512);
  let read: number;
  try {
    const handle = await fs.open(file, 'r');
    try {
      ({ bytesRead: read } = await handle.read(head, 0, 512, 0));
    } finally {
      await handle.close();
    }
  } catch (e) {
    throw invalid(file, `cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (read < 512 || head.subarray(257, 262).toString('latin1') !== 'ustar')
    throw invalid(file, 'not an uncompressed tar archive (no ustar header)');
}

function parseManifest(file: string, text: string): ManifestEntry {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalid(file, `${MANIFEST} is not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(value) || value.length !== 1)
    throw invalid(
      file,
      `${MANIFEST} must list exactly one image (it lists ${Array.isArray(value) ? value.length : 'none'})`,
    );
  const m = value[0] as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const extra = Object.keys(m ?? {}).find(
    (k) => !['Config', 'RepoTags', 'Layers', 'LayerSources'].includes(k),
  );
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.Config !== 'string' ||
    !(m.RepoTags === null || m.RepoTags === undefined || strings(m.RepoTags)) ||
    !strings(m.Layers) ||
    (m.Layers as string[]).length === 0 ||
    extra !== undefined
  )
    throw invalid(
      file,
      `${MANIFEST} is not a docker-archive manifest (Config, RepoTags, Layers${extra ? `; unknown key ${extra}` : ''})`,
    );
  return {
    Config: m.Config,
    RepoTags: (m.RepoTags as string[] | null | undefined) ?? [],
    Layers: m.Layers as string[],
    ...(m.LayerSources !== undefined ? { LayerSources: m.LayerSources } : {}),
  };
}

/**
 * The archive as the engine is to load it: every entry passed on as it is, except the manifest,
 * written anew from the one {@link inspectImageArchive} checked with `tags` as its only tags, and
 * the legacy `repositories` file, left out. Read once, in order, streamed (never held in memory).
 */
export function archiveForLoad(
  file: string,
  image: ImageArchive,
  tags: string[],
): { what: string; read(): AsyncIterable<Uint8Array> } {
  return {
    what: `image archive ${file}`,
    read() {
      const pack = new Pack({ portable: true });
      const manifest = Buffer.from(JSON.stringify([{ ...image.manifest, RepoTags: tags }]));
      const parser = new Parser({
        strict: true,
        onReadEntry: (entry: ReadEntry) => {
          const name = inside(entry.path);
          if (name === MANIFEST || name === REPOSITORIES) return void entry.resume();
          pack.add(entry);
        },
      });
      parser.on('end', () => {
        // A ReadEntry of our own making: node-tar's way to add bytes that are not a file on disk.
        const entry = new ReadEntry(
          new Header({
            path: MANIFEST,
            type: 'File',
            size: manifest.length,
            mode: 0o644,
            mtime: new Date(0),
          }),
        );
        pack.add(entry);
        entry.end(manifest);
        pack.end();
      });
      const source = createReadStream(file);
      pipeline(source, parser).catch((e: Error) => pack.emit('error', invalid(file, e.message)));
      return pack;
    },
  };
}
