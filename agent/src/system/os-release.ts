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

/** The running gateway OS version: VERSION_ID of the booted root's /etc/os-release. */
export async function readRunningVersion(osReleaseFile: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(osReleaseFile, 'utf8');
  } catch (e) {
    throw new ClgwError('STATE_INVALID', `cannot read ${osReleaseFile}: ${(e as Error).message}`, {
      cause: e,
      details: { file: osReleaseFile },
    });
  }
  const version = parseOsRelease(text).VERSION_ID;
  if (!version) {
    throw new ClgwError('STATE_INVALID', `${osReleaseFile} has no VERSION_ID`, {
      details: { file: osReleaseFile },
    });
  }
  return version;
}
