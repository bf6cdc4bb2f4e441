/**
 * Text for the console's screens: everything shown is plain ASCII (the Linux VGA console under
 * `TERM=linux` has no wide or emoji glyphs), and everything that comes from outside (hostnames,
 * error messages, diagnostics summaries) is escaped before it becomes blessed markup, where `{`
 * starts a tag. Pure: no `node:*` imports.
 */

/**
 * Makes outside text safe to show: control characters and anything outside printable ASCII
 * become `?` (a terminal escape in a hostname must not reach the screen), and blessed's tag
 * braces become the `{open}`/`{close}` tags that draw them literally.
 */
export function escapeText(text: string): string {
  return plainText(text).replace(/[{}]/g, (ch) => (ch === '{' ? '{open}' : '{close}'));
}

/** Outside text as printable ASCII only (no markup escaping: for widgets that do not parse tags). */
export function plainText(text: string): string {
  return Array.from(text, (ch) => {
    const c = ch.codePointAt(0) ?? 0;
    return c >= 0x20 && c < 0x7f ? ch : (ASCII_FOR[ch] ?? '?');
  }).join('');
}

/** Punctuation the agent's messages use, in the ASCII the VGA console can draw. */
const ASCII_FOR: Record<string, string> = {
  '\u2014': '-',
  '\u2013': '-',
  '\u2026': '...',
  '\u2018': "'",
  '\u2019': "'",
  '\u201c': '"',
  '\u201d': '"',
  '\u00a0': ' ',
};

/** How many columns blessed markup takes on screen: its tags (`{bold}`, `{/}`) take none. */
export function visibleLength(markup: string): number {
  return markup.replace(/\{open\}|\{close\}/g, 'x').replace(/\{[^{}]*\}/g, '').length;
}

/**
 * Outside text as lines of at most `width` columns: broken at blanks, and a word longer than a
 * line (a URL, a path) broken after its last `/`, `?`, `&`, `:` or `,` that fits, else cut hard.
 * Nothing is dropped. Returns printable ASCII (see {@link plainText}), not yet markup-escaped.
 */
export function wrap(text: string, width: number): string[] {
  const w = Math.max(1, width);
  const lines: string[] = [];
  let line = '';
  // Each word with the blanks before it: kept inside a line (`a  b` stays so), dropped at a break.
  for (const [, gap = '', found = ''] of plainText(text).matchAll(/( *)([^ ]+)/g)) {
    let word = found;
    if (line && line.length + gap.length + word.length <= w) {
      line += gap + word;
      continue;
    }
    if (word.length > w && line && w - line.length - gap.length >= MIN_PIECE) {
      // A word longer than a line starts where it is: no line left nearly empty before it.
      const [piece, after] = breakWord(word, w - line.length - gap.length);
      lines.push(line + gap + piece);
      line = '';
      word = after;
    }
    if (line) lines.push(line);
    line = '';
    while (word.length > w) {
      const [piece, after] = breakWord(word, w);
      lines.push(piece);
      word = after;
    }
    line = word;
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

/** The fewest columns worth starting a long word in at the end of a line. */
const MIN_PIECE = 12;

/** A long word's first `room` columns or fewer, cut after punctuation in its second half. */
function breakWord(word: string, room: number): [string, string] {
  const head = word.slice(0, room);
  const at = Math.max(...['/', '?', '&', ':', ',', '='].map((c) => head.lastIndexOf(c)));
  const cut = at >= room / 2 ? at + 1 : room;
  return [word.slice(0, cut), word.slice(cut)];
}

/** {@link wrap}, each line escaped for blessed markup. */
export function wrapEscaped(text: string, width: number): string[] {
  return wrap(text, width).map((l) => l.replace(/[{}]/g, (ch) => (ch === '{' ? '{open}' : '{close}')));
}

/** Shortens text to `width` columns (ASCII, so one character is one column), marking the cut. */
export function clip(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 3 ? text.slice(0, width) : `${text.slice(0, width - 3)}...`;
}

/** `[##########..........]  50%` — an ASCII progress bar `width` columns wide, percentage included. */
export function progressBar(percent: number, width: number): string {
  const p = Number.isFinite(percent) ? Math.max(0, Math.min(100, percent)) : 0;
  const label = `${Math.floor(p).toString().padStart(3)}%`;
  const inner = Math.max(1, width - label.length - 3);
  const filled = Math.round((inner * p) / 100);
  return `[${'#'.repeat(filled)}${'.'.repeat(inner - filled)}] ${label}`;
}
