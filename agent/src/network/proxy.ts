import { promises as fs } from 'node:fs';
import { ClgwError } from '@clgw/core/errors.js';
import { hostnameProblem, parseIpv4 } from '@clgw/core/network/settings.js';
import { readJsonFile, writeFileAtomic } from '@clgw/core/platform/atomic.js';
import * as z from 'zod';

/**
 * The HTTP(S) proxy for sites without direct internet access (SPEC §5): server, port, optional
 * user and password. Kept on the data partition (`var/clgw/proxy.json`, mode 0600: it holds a
 * password), used for every outbound request of the agent.
 */
export interface ProxySetting {
  server: string;
  port: number;
  user?: string;
  password?: string;
}

const fileSchema = z
  .object({
    server: z.string(),
    port: z.number(),
    user: z.string().optional(),
    password: z.string().optional(),
  })
  .strict();

/** Control characters and the characters that would end a URL's userinfo are refused outright. */
const CREDENTIAL = /^[^\u0000-\u001f\u007f]{1,128}$/;

/** The setting, or SETTING_INVALID naming the field and why. */
export function validateProxy(input: {
  server?: unknown;
  port?: unknown;
  user?: unknown;
  password?: unknown;
}): ProxySetting {
  const bad = (field: string, message: string) =>
    new ClgwError('SETTING_INVALID', `proxy ${field} ${message}`, { details: { field } });
  const server = typeof input.server === 'string' ? input.server.trim() : '';
  if (!server) throw bad('server', 'is missing');
  if (parseIpv4(server) === undefined && hostnameProblem(server))
    throw bad(
      'server',
      `"${server}" is neither an IPv4 address nor a host name (${hostnameProblem(server)})`,
    );
  const port = typeof input.port === 'string' ? Number(input.port) : input.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw bad('port', `must be a whole number from 1 to 65535 (got ${JSON.stringify(input.port)})`);
  const user = typeof input.user === 'string' && input.user !== '' ? input.user : undefined;
  const password = typeof input.password === 'string' && input.password !== '' ? input.password : undefined;
  if (user !== undefined && !CREDENTIAL.test(user))
    throw bad('user', 'must be 1-128 characters without control characters');
  if (password !== undefined && !CREDENTIAL.test(password))
    throw bad('password', 'must be 1-128 characters without control characters');
  if (password !== undefined && user === undefined) throw bad('password', 'needs a user');
  return { server, port, ...(user ? { user } : {}), ...(password ? { password } : {}) };
}

/** `http://user:password@server:port` with the credentials percent-encoded. */
export function proxyUrl(s: ProxySetting): string {
  const auth = s.user
    ? `${encodeURIComponent(s.user)}${s.password ? `:${encodeURIComponent(s.password)}` : ''}@`
    : '';
  return `http://${auth}${s.server}:${s.port}`;
}

/** What status and the CLI show: never the password. */
export function describeProxy(
  s: ProxySetting | undefined,
): { server: string; port: number; user?: string; password: boolean } | null {
  return s
    ? {
        server: s.server,
        port: s.port,
        ...(s.user ? { user: s.user } : {}),
        password: s.password !== undefined,
      }
    : null;
}

/** The saved setting, or undefined (none: direct, or the environment's HTTPS_PROXY in development). */
export async function readProxy(file: string): Promise<ProxySetting | undefined> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  return validateProxy(fileSchema.parse(raw));
}

/** Saves the setting (mode 0600) or removes it. */
export async function writeProxy(file: string, s: ProxySetting | undefined): Promise<void> {
  if (s) await writeFileAtomic(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  else await fs.rm(file, { force: true });
}
