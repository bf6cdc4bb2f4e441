/**
 * The Debian mirror the root filesystem is bootstrapped from: the build machine's own apt
 * sources, so no mirror host is ever written into the repository. Pure parsers + one reader.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';

interface Source {
  uris: string[];
  suites: string[];
  components: string[];
}

/** deb822 `.sources` stanzas (`Types: deb`, `URIs:`, `Suites:`, `Components:`), deb lines only. */
export function parseDeb822Sources(text: string): Source[] {
  const out: Source[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!words('types').includes('deb') || fields.get('enabled')?.toLowerCase() === 'no') continue;
    out.push({ uris: words('uris'), suites: words('suites'), components: words('components') });
  }
  return out;
}

/** One-line `deb [options] URI suite components…` entries. */
export function parseOneLineSources(text: string): Source[] {
  const out: Source[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ uris: [m[1]!], suites: [m[2]!], components: m[3]!.split(/\s+/).filter(Boolean) });
  }
  return out;
}

/** The first source carrying `suite` with the `main` component. */
export function mirrorFor(sources: Source[], suite: string): string | undefined {
  const hit = sources.find((s) => s.suites.includes(suite) && s.components.includes('main') && s.uris.length);
  return hit?.uris[0];
}

/** Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}. */
export async function machineMirror(suite: string, etc = '/etc/apt'): Promise<string> {
  const files: string[] = [path.join(etc, 'sources.list')];
  const dir = path.join(etc, 'sources.list.d');
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort())
    files.push(path.join(dir, name));
  const sources: Source[] = [];
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    if (file.endsWith('.sources')) sources.push(...parseDeb822Sources(text));
    else if (file.endsWith('.list')) sources.push(...parseOneLineSources(text));
  }
  const mirror = mirrorFor(sources, suite);
  if (!mirror) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `no apt source in ${etc} carries ${suite} main; cannot debootstrap`,
      {
        details: { etc, suite },
      },
    );
  }
  return mirror;
}
