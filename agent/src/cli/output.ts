/**
 * How `clgw` lays its text out for a terminal: the width to fit, long lines wrapped at word
 * boundaries (a cause is never cut off), and the one-line progress of an update.
 * Pure: no `node:*` imports.
 */
import type { Progress } from '../actors/progress.js';

/** The width to fit: the terminal's, else a numeric `COLUMNS`, else 80 (a pipe, a file). */
export function outputWidth(columns: number | undefined, env: Record<string, string | undefined>): number {
  if (columns && columns > 0) return columns;
  const c = Number(env.COLUMNS);
  return Number.isInteger(c) && c >= 20 ? c : 80;
}

/**
 * `line` wrapped to `width` columns at spaces, the continuation lines indented by `indent`
 * spaces; a word longer than a line (a URL, a path) is split, never dropped.
 */
export function wrapLine(line: string, width: number, indent = 0): string[] {
  if (line.length <= width) return [line];
  const pad = ' '.repeat(Math.min(indent, Math.floor(width / 2)));
  const out: string[] = [];
  // Each word with the spaces before it: kept inside a line (aligned columns stay aligned),
  // dropped where the line breaks.
  const words = [...line.matchAll(/( *)(\S+)/g)].map((m) => ({ sep: m[1]!, word: m[2]! }));
  let current = '';
  let fresh = true; // nothing but the indentation on the current line yet
  for (const [i, { sep, word }] of words.entries()) {
    let w = word;
    let gap = fresh ? (i === 0 ? sep : '') : sep;
    if (!fresh && current.length + gap.length + w.length > width) {
      out.push(current);
      current = pad;
      gap = '';
      fresh = true;
    }
    while (current.length + gap.length + w.length > width) {
      const room = width - current.length - gap.length;
      if (room <= 0) {
        out.push(current);
        current = pad;
        gap = '';
        continue;
      }
      out.push(current + gap + w.slice(0, room));
      w = w.slice(room);
      current = pad;
      gap = '';
    }
    if (w) {
      current += gap + w;
      fresh = false;
    }
  }
  if (!fresh) out.push(current);
  return out;
}

/**
 * Lines wrapped to `width`. A line laid out in columns (`label:   value`, `  FAIL ntp   message`:
 * two spaces or more before a column, within the first 40) continues under its last column, a
 * list item (`- text`) under its text, any other line under its own indentation plus two.
 */
export function fitText(text: string, width: number): string {
  return text
    .split('\n')
    .flatMap((line) => {
      let indent = /^ */.exec(line)![0].length + 2;
      for (const m of line.slice(0, 40).matchAll(/ {2,}(?=\S)/g)) indent = m.index + m[0].length;
      // A list item (`  - reason`) continues under its text.
      const item = /^ *- /.exec(line);
      if (item) indent = item[0].length;
      return wrapLine(line, width, indent);
    })
    .join('\n');
}

const MIB = 1024 * 1024;
const mib = (n: number) => (n / MIB).toFixed(1);

/**
 * Whether the phase's bytes measure its progress: the download and the read-back that verifies
 * the slot count their bytes as they go. Any other phase is shown without a percentage.
 */
export function hasByteProgress(p: Pick<Progress, 'phase' | 'total'>): boolean {
  return p.total > 0 && (p.phase.startsWith('downloading') || p.phase.startsWith('verifying'));
}

/**
 * The update's progress as one line of at most `width` columns. Most important first: the phase,
 * the percentage, the bytes, the rate, then what was downloaded and reused; the bar takes the room
 * that is left (none below 10 columns). A phase without byte progress shows `phase…` and the time
 * it has taken so far, never a percentage.
 */
export function progressLine(p: Progress, width: number, now: number): string {
  const cut = (s: string) => (s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`);
  if (!hasByteProgress(p)) {
    const elapsed = Math.max(0, Math.round((now - p.startedAt) / 1000));
    return cut(`${p.phase}… ${elapsed} s`);
  }
  const percent = p.bytes >= p.total ? 100 : Math.min(99, Math.floor((100 * p.bytes) / p.total));
  const head = `${p.phase} ${String(percent).padStart(3)} %`;
  const optional = [
    ` ${mib(p.bytes)}/${mib(p.total)} MiB`,
    p.rate > 0 ? ` ${mib(p.rate)} MiB/s` : ' -- MiB/s',
    p.downloaded !== undefined && p.reused !== undefined
      ? ` (${mib(p.downloaded)} downloaded, ${mib(p.reused)} reused)`
      : '',
  ];
  let tail = '';
  for (const part of optional) {
    if (head.length + tail.length + part.length > width) break;
    tail += part;
  }
  const room = width - head.length - tail.length - 3; // ' [' + ']'
  if (room < 10) return cut(head + tail);
  const barWidth = Math.min(40, room);
  const filled = Math.round((barWidth * percent) / 100);
  return `${p.phase} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${head.slice(p.phase.length)}${tail}`;
}
