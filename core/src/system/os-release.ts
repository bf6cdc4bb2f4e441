import { promises as fs } from 'node:fs';
import { ClgwError } from '../errors.js';

/** Parses os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1).replace(/\\(["'\\$`])/g, '$1');
    }
    out[m[1]!] = value;
  }
  return out;
}

/**
 * The OS patch level os-release carries (`CLGW_PATCH_LEVEL`, the vendor field of os-release(5)):
 * the UTC date on which the release's Debian packages were taken from the archive, as
 * YYYY-MM-DD. Undefined when absent or not such a date (an older image).
 */
export function patchLevelOf(fields: Record<string, string>): string | undefined {
  const level = fields.CLGW_PATCH_LEVEL;
  return level !== undefined && isPatchLevel(level) ? level : undefined;
}

/** A patch level as os-release and compat.yaml write it: a real calendar date, YYYY-MM-DD. */
export function isPatchLevel(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s;
}

/** The running gateway OS: the booted root's /etc/os-release, its VERSION_ID required. */
export async function readRunningRelease(
  osReleaseFile: string,
): Promise<{ version: string; patchLevel: string | undefined }> {
  let text: string;
  try {
    text = await fs.readFile(osReleaseFile, 'utf8');
  } catch (e) {
    throw new ClgwError('STATE_INVALID', `cannot read ${osReleaseFile}: ${(e as Error).message}`, {
      cause: e,
      details: { file: osReleaseFile },
    });
  }
  const fields = parseOsRelease(text);
  const version = fields.VERSION_ID;
  if (!version) {
    throw new ClgwError('STATE_INVALID', `${osReleaseFile} has no VERSION_ID`, {
      details: { file: osReleaseFile },
    });
  }
  return { version, patchLevel: patchLevelOf(fields) };
}
