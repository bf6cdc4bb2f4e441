/**
 * The EnginePort over Podman's Docker-compatible API on a unix socket (Podman 4.3, Debian 12).
 *
 * Plain `node:http` with `socketPath` rather than a Docker client library or got: the agent uses
 * ten calls, each a small JSON exchange except `images/load`, whose request body is the image
 * archive streamed from disk (hundreds of MB, never held in memory); a client library would add
 * a dependency tree and its own idea of errors for no gain.
 */
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import type { ArchiveBody, ContainerInfo, ContainerSpec, EnginePort, ImageInfo } from './engine-port.js';

/** API version prefix: what Podman 4.3's compat API reports (`Api-Version: 1.41`) and accepts. */
const API = '/v1.41';

/** Largest answer read from the engine; the largest real one (a container list) is a few KB each. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/**
 * A label the adapter adds to every container it creates: which env keys and labels the spec
 * set. Inspect merges the image's env and labels (and Podman's own `container=podman`,
 * `HOSTNAME=…`) into the container's; without this the spec read back would pin the old image's
 * defaults (e.g. its version variables) onto the container an upgrade creates from it. Hidden
 * from `ContainerInfo.labels`.
 */
export const SPEC_LABEL = 'io.clgw.engine-spec';

/**
 * Env Podman adds to every container (`container=podman`, `HOSTNAME=…`, and containers.conf's
 * default `TERM=xterm`); dropped when reading back the spec of a container the adapter did not create.
 */
function isEngineEnv(entry: string): boolean {
  const key = envKey(entry);
  return key === 'container' || key === 'HOSTNAME' || entry === 'TERM=xterm';
}

/** Load failures that are the engine's (disk, database), not the archive's. */
const ENGINE_SIDE_LOAD_FAILURE =
  /no space left|read-only file system|input\/output error|database|permission denied/i;

export interface EngineOptions {
  /** How long a call may go without the engine answering (default 30 s; `stop` adds its grace time). */
  timeoutMs?: number;
  /** The same for `images/load`, which answers only once the image is stored (default 10 min). */
  loadTimeoutMs?: number;
}

interface Answer {
  status: number;
  body: Buffer;
}

interface Call {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** What the call does, for messages: `create container clgw-tunnel`. */
  what: string;
  json?: unknown;
  /** An archive streamed as the request body (chunked: a rewritten archive has no size up front). */
  body?: ArchiveBody;
  timeoutMs?: number;
}

/** Creates the engine port for the Podman API at `socketPath`. */
export function createEngine(socketPath: string, opts: EngineOptions = {}): EnginePort {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const loadTimeoutMs = opts.loadTimeoutMs ?? 10 * 60_000;

  function request(call: Call): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      let payload: Buffer | undefined;
      if (call.json !== undefined) {
        payload = Buffer.from(JSON.stringify(call.json));
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = payload.length;
      } else if (call.body) {
        headers['Content-Type'] = 'application/x-tar';
      }
      let answered = false;
      const limit = call.timeoutMs ?? timeoutMs;
      const req = http.request(
        { socketPath, method: call.method, path: call.path, headers, timeout: limit },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              res.destroy();
              reject(engineError(call, res.statusCode ?? 0, `answer larger than ${MAX_ANSWER_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', (e) => reject(unavailable(call, e)));
        },
      );
      req.on('timeout', () => {
        req.destroy(Object.assign(new Error(`no answer within ${limit} ms`), { code: 'ETIMEDOUT' }));
      });
      let bodyError: Error | undefined;
      req.on('error', (e) => {
        if (bodyError) {
          reject(
            isClgwError(bodyError)
              ? bodyError
              : new ClgwError('IMAGE_INVALID', `${call.what}: cannot read it: ${bodyError.message}`, {
                  cause: bodyError,
                  details: { archive: call.body?.what },
                }),
          );
        } else if (!answered) {
          // Once answered, a broken pipe only means the engine stopped reading after its answer.
          reject(unavailable(call, e));
        }
      });
      if (call.body) {
        const stream = Readable.from(call.body.read());
        stream.on('error', (e) => {
          bodyError = e;
          req.destroy(e);
        });
        stream.pipe(req);
      } else {
        req.end(payload);
      }
    });
  }

  function unavailable(call: Call, e: unknown): ClgwError {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const why =
      code === 'ENOENT'
        ? 'no such socket'
        : code === 'ECONNREFUSED'
          ? 'connection refused'
          : code === 'ETIMEDOUT'
            ? (e as Error).message
            : (e as Error).message || code;
    return new ClgwError(
      'ENGINE_UNAVAILABLE',
      `container engine at ${socketPath} is unavailable (${call.what}): ${why}`,
      {
        transient: true,
        cause: e,
        details: { socket: socketPath, call: `${call.method} ${call.path}`, code },
      },
    );
  }

  function engineError(call: Call, status: number, message: string): ClgwError {
    return new ClgwError('ENGINE_ERROR', `${call.what}: engine answered HTTP ${status}: ${message}`, {
      details: { socket: socketPath, call: `${call.method} ${call.path}`, status, engineMessage: message },
    });
  }

  /** Makes the call; `ok` statuses resolve, `absent` ones resolve undefined, others throw ENGINE_ERROR. */
  async function call(
    c: Call,
    ok: readonly number[],
    absent: readonly number[] = [],
  ): Promise<Answer | undefined> {
    const answer = await request(c);
    if (ok.includes(answer.status)) return answer;
    if (absent.includes(answer.status)) return undefined;
    throw engineError(c, answer.status, engineMessage(answer.body));
  }

  async function getJson(c: Call): Promise<unknown | undefined> {
    const answer = await call(c, [200], [404]);
    return answer === undefined ? undefined : parseJson(c, answer);
  }

  function parseJson(c: Call, answer: Answer): unknown {
    try {
      return JSON.parse(answer.body.toString('utf8'));
    } catch {
      throw engineError(c, answer.status, `answer is not JSON: ${answer.body.subarray(0, 200).toString()}`);
    }
  }

  async function inspectImageRaw(ref: string): Promise<RawImage | undefined> {
    return (await getJson({
      method: 'GET',
      path: `${API}/images/${encodeURIComponent(ref)}/json`,
      what: `inspect image ${ref}`,
    })) as RawImage | undefined;
  }

  async function inspectContainer(name: string): Promise<ContainerInfo | undefined> {
    const c: Call = {
      method: 'GET',
      path: `${API}/containers/${encodeURIComponent(name)}/json`,
      what: `inspect container ${name}`,
    };
    const raw = (await getJson(c)) as RawContainer | undefined;
    if (raw === undefined) return undefined;
    if (typeof raw.Id !== 'string' || typeof raw.Config !== 'object' || raw.Config === null) {
      throw engineError(c, 200, 'answer lacks Id or Config');
    }
    // A container this adapter did not create: take the image's defaults out of what it reports.
    const image = specKeysOf(raw) ? undefined : await inspectImageRaw(raw.Image ?? '');
    return toContainerInfo(raw, image);
  }

  return {
    async ping() {
      await call({ method: 'GET', path: '/_ping', what: 'ping' }, [200]);
    },

    async listContainers() {
      const c: Call = { method: 'GET', path: `${API}/containers/json?all=true`, what: 'list containers' };
      const list = (await getJson(c)) as { Id?: unknown }[] | undefined;
      if (!Array.isArray(list)) throw engineError(c, 200, 'answer is not a list');
      const out: ContainerInfo[] = [];
      for (const entry of list) {
        if (typeof entry?.Id !== 'string') continue;
        // Removed between the list and the inspect: not there any more.
        const info = await inspectContainer(entry.Id);
        if (info) out.push(info);
      }
      return out;
    },

    inspectContainer,

    async loadImage(archive) {
      const c: Call = {
        method: 'POST',
        path: `${API}/images/load?quiet=1`,
        what: `load ${archive.what}`,
        timeoutMs: loadTimeoutMs,
        body: archive,
      };
      const answer = await request(c);
      const text = answer.body.toString('utf8');
      const refused = (message: string) =>
        new ClgwError('IMAGE_INVALID', `${c.what}: engine refused it (HTTP ${answer.status}): ${message}`, {
          details: { archive: archive.what, status: answer.status, engineMessage: message },
        });
      if (answer.status !== 200) {
        const message = engineMessage(answer.body);
        if (answer.status >= 500 && ENGINE_SIDE_LOAD_FAILURE.test(message)) {
          throw engineError(c, answer.status, message);
        }
        throw refused(message);
      }
      // One JSON object (Podman) or a stream of them (Docker), each a progress line or an error.
      const refs: string[] = [];
      for (const msg of jsonMessages(text)) {
        const error = msg.errorDetail?.message ?? msg.error;
        if (typeof error === 'string' && error) throw refused(error);
        const m = typeof msg.stream === 'string' ? /Loaded image(?: ID)?:\s*(.+)/.exec(msg.stream) : null;
        if (m?.[1])
          refs.push(
            ...m[1]
              .split(',')
              .map((r) => r.trim())
              .filter(Boolean),
          );
      }
      if (refs.length === 0) throw refused(`no image loaded (answer: ${text.slice(0, 200)})`);
      return refs;
    },

    async inspectImage(reference): Promise<ImageInfo | undefined> {
      const raw = await inspectImageRaw(reference);
      if (raw === undefined) return undefined;
      return { id: String(raw.Id ?? ''), tags: Array.isArray(raw.RepoTags) ? raw.RepoTags.map(String) : [] };
    },

    async tagImage(id, reference) {
      const { repo, tag } = splitReference(reference);
      await call(
        {
          method: 'POST',
          path: `${API}/images/${encodeURIComponent(id)}/tag?repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`,
          what: `tag image ${id} as ${reference}`,
        },
        [200, 201],
      );
    },

    async removeImage(reference) {
      await call(
        {
          method: 'DELETE',
          path: `${API}/images/${encodeURIComponent(reference)}`,
          what: `remove image ${reference}`,
        },
        [200],
        [404],
      );
    },

    async createContainer(spec) {
      const c: Call = {
        method: 'POST',
        path: `${API}/containers/create?name=${encodeURIComponent(spec.name)}`,
        what: `create container ${spec.name}`,
        json: createBody(spec),
      };
      for (const v of spec.volumes) {
        if (v.host.includes(':') || v.container.includes(':')) {
          // Docker's bind syntax `host:container[:ro]` has no escape for ':'.
          throw new ClgwError(
            'ENGINE_ERROR',
            `${c.what}: volume ${v.host} → ${v.container} cannot be bound: a path contains ':'`,
            { details: { socket: socketPath, volume: v } },
          );
        }
      }
      const answer = (await call(c, [200, 201]))!;
      const id = (parseJson(c, answer) as { Id?: unknown }).Id;
      if (typeof id !== 'string') throw engineError(c, answer.status, 'answer lacks the container Id');
      return id;
    },

    async startContainer(name) {
      // 304: already running.
      await call(
        {
          method: 'POST',
          path: `${API}/containers/${encodeURIComponent(name)}/start`,
          what: `start container ${name}`,
        },
        [204, 304],
      );
    },

    async stopContainer(name, timeoutSeconds) {
      const t = Math.max(0, Math.floor(timeoutSeconds));
      // 304: already stopped. The engine answers once the container is down: after up to t seconds.
      await call(
        {
          method: 'POST',
          path: `${API}/containers/${encodeURIComponent(name)}/stop?t=${t}`,
          what: `stop container ${name}`,
          timeoutMs: timeoutMs + t * 1000,
        },
        [204, 304],
      );
    },

    async removeContainer(name) {
      // 404: already gone.
      await call(
        {
          method: 'DELETE',
          path: `${API}/containers/${encodeURIComponent(name)}?force=true`,
          what: `remove container ${name}`,
        },
        [200, 204],
        [404],
      );
    },

    async renameContainer(name, newName) {
      await call(
        {
          method: 'POST',
          path: `${API}/containers/${encodeURIComponent(name)}/rename?name=${encodeURIComponent(newName)}`,
          what: `rename container ${name} to ${newName}`,
        },
        [200, 204],
      );
    },
  };
}

/** The create request for a spec. */
function createBody(spec: ContainerSpec): unknown {
  const keys: SpecKeys = {
    env: [...new Set(spec.env.map(envKey))],
    labels: Object.keys(spec.labels).filter((k) => k !== SPEC_LABEL),
  };
  return {
    Image: spec.image,
    Env: spec.env,
    Labels: { ...spec.labels, [SPEC_LABEL]: JSON.stringify(keys) },
    HostConfig: {
      NetworkMode: 'host',
      Binds: spec.volumes.map((v) => `${v.host}:${v.container}${v.readOnly ? ':ro' : ''}`),
      RestartPolicy: { Name: spec.restartPolicy, MaximumRetryCount: 0 },
      ...(spec.memoryBytes !== undefined ? { Memory: spec.memoryBytes } : {}),
    },
  };
}

interface SpecKeys {
  env: string[];
  labels: string[];
}

/** The parts of an inspect answer this adapter reads. */
interface RawContainer {
  Id: string;
  Name?: string;
  Image?: string;
  State?: { Status?: string; Running?: boolean; StartedAt?: string };
  Config: { Image?: string; Env?: string[] | null; Labels?: Record<string, string> | null };
  HostConfig?: {
    Binds?: string[] | null;
    RestartPolicy?: { Name?: string } | null;
    Memory?: number;
  };
}

interface RawImage {
  Id?: string;
  RepoTags?: string[] | null;
  Config?: { Env?: string[] | null; Labels?: Record<string, string> | null } | null;
}

function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

function specKeysOf(raw: RawContainer): SpecKeys | undefined {
  const label = raw.Config.Labels?.[SPEC_LABEL];
  if (!label) return undefined;
  try {
    const v = JSON.parse(label) as Partial<SpecKeys>;
    if (Array.isArray(v.env) && Array.isArray(v.labels))
      return { env: v.env.map(String), labels: v.labels.map(String) };
  } catch {
    // A label someone else wrote: read the spec as for a foreign container.
  }
  return undefined;
}

const RESTART_POLICIES: readonly ContainerSpec['restartPolicy'][] = [
  'no',
  'always',
  'unless-stopped',
  'on-failure',
];

/** An inspect answer as ContainerInfo; `image` is the container's image, for foreign containers. */
function toContainerInfo(raw: RawContainer, image: RawImage | undefined): ContainerInfo {
  const allEnv = raw.Config.Env ?? [];
  const allLabels = { ...(raw.Config.Labels ?? {}) };
  delete allLabels[SPEC_LABEL];
  const keys = specKeysOf(raw);

  let env: string[];
  let labels: Record<string, string>;
  if (keys) {
    // The last entry of each key the spec set, in the spec's order.
    const byKey = new Map(allEnv.map((e) => [envKey(e), e]));
    env = keys.env.flatMap((k) => (byKey.has(k) ? [byKey.get(k)!] : []));
    labels = Object.fromEntries(keys.labels.filter((k) => k in allLabels).map((k) => [k, allLabels[k]!]));
  } else {
    const imageEnv = new Set(image?.Config?.Env ?? []);
    const imageLabels = image?.Config?.Labels ?? {};
    env = allEnv.filter((e) => !imageEnv.has(e) && !isEngineEnv(e));
    labels = Object.fromEntries(Object.entries(allLabels).filter(([k, v]) => imageLabels[k] !== v));
  }

  // Podman reorders binds (by container path): read back in that order, whatever it was created in.
  const volumes = (raw.HostConfig?.Binds ?? [])
    .map((bind) => {
      const [host = '', container = '', options = ''] = bind.split(':');
      return { host, container, readOnly: options.split(',').includes('ro') };
    })
    .sort((a, b) => (a.container < b.container ? -1 : a.container > b.container ? 1 : 0));
  const policy = raw.HostConfig?.RestartPolicy?.Name ?? '';
  const restartPolicy = (RESTART_POLICIES as readonly string[]).includes(policy)
    ? (policy as ContainerSpec['restartPolicy'])
    : 'no';
  const memory = raw.HostConfig?.Memory ?? 0;
  const name = (raw.Name ?? '').replace(/^\//, '');
  const startedAt = raw.State?.StartedAt;
  const everStarted = startedAt !== undefined && !startedAt.startsWith('0001-01-01');

  return {
    id: raw.Id,
    name,
    image: raw.Config.Image ?? '',
    imageId: raw.Image ?? '',
    state: raw.State?.Status ?? 'unknown',
    running: raw.State?.Running === true,
    ...(everStarted ? { startedAt } : {}),
    labels: allLabels,
    spec: {
      name,
      image: raw.Config.Image ?? '',
      env,
      labels,
      volumes,
      restartPolicy,
      ...(memory > 0 ? { memoryBytes: memory } : {}),
    },
  };
}

/** The engine's error text: the JSON `message` (Podman and Docker), else the body itself. */
function engineMessage(body: Buffer): string {
  const text = body.toString('utf8').trim();
  try {
    const v = JSON.parse(text) as { message?: unknown };
    if (typeof v.message === 'string') return v.message;
  } catch {
    // Not JSON: the text is the message.
  }
  return text.slice(0, 500) || '(no message)';
}

interface LoadMessage {
  stream?: unknown;
  error?: unknown;
  errorDetail?: { message?: unknown };
}

/** The JSON objects of a load answer: one object, or one per line. */
function jsonMessages(text: string): LoadMessage[] {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? (v as LoadMessage[]) : [v as LoadMessage];
  } catch {
    return text
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => {
        try {
          return JSON.parse(line) as LoadMessage;
        } catch {
          return { stream: line };
        }
      });
  }
}

/** `localhost/name:1.0` → repo `localhost/name`, tag `1.0` (the tag defaults to `latest`). */
function splitReference(reference: string): { repo: string; tag: string } {
  const colon = reference.lastIndexOf(':');
  return colon > reference.lastIndexOf('/')
    ? { repo: reference.slice(0, colon), tag: reference.slice(colon + 1) }
    : { repo: reference, tag: 'latest' };
}

/**
 * An archive file as the engine's load reads it. A file that cannot be read (absent, a directory)
 * is IMAGE_INVALID naming it, as the load's own refusals are.
 */
export function archiveFile(file: string): ArchiveBody {
  return {
    what: `image archive ${file}`,
    async *read() {
      const st = await fs.stat(file).catch((e: NodeJS.ErrnoException) => {
        throw new ClgwError('IMAGE_INVALID', `cannot read image archive ${file}: ${e.code ?? e.message}`, {
          cause: e,
          details: { file },
        });
      });
      if (!st.isFile())
        throw new ClgwError('IMAGE_INVALID', `image archive ${file} is not a regular file`, {
          details: { file },
        });
      yield* createReadStream(file);
    },
  };
}
