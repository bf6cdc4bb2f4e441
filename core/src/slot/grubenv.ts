/**
 * GRUB's environment block (`grubenv`): exactly 1024 bytes, the signature line
 * `# GRUB Environment Block\n`, then `name=value\n` lines, the rest padded with `#`.
 *
 * Two readers live here on purpose:
 * - {@link parseGrubenv} is the agent's reader. It is strict: anything our writer (or
 *   `grub-editenv`) would never produce is reported as GRUBENV_INVALID, because that is how a torn
 *   or garbled block is noticed before the agent builds on it.
 * - {@link grubReadEnv} / {@link grubSetEnv} reproduce what GRUB itself does with a block (its
 *   `load_env` and `save_env`), including with broken ones, so the simulator's boot emulator sees
 *   exactly what the real bootloader sees. Behaviour checked against GRUB 2.06's envblk code and,
 *   in the integration tests, against `grub-editenv` and `grub-emu`.
 *
 * Pure: no `node:*` imports.
 */
import { ClgwError } from '../errors.js';

/** Size of the block `grub-editenv create` writes; GRUB's `save_env` never changes a file's size. */
export const GRUBENV_SIZE = 1024;
/**
 * The sector size of the ESP's disk, and the part of the block that holds the variables. grubenv
 * is written in place (see grubenv-file.ts), and a power cut during that write can leave some
 * 512-byte sectors new and others old; a single sector write is atomic on the disks we target.
 * {@link serializeGrubenv} therefore ends the header and every `name=value` line within the first
 * sector and pads the rest with `#` — identical in every block it makes — so a torn write parses
 * to the old or the new variables, never a mix.
 */
export const GRUBENV_SECTOR = 512;
/** The signature every block starts with. */
export const GRUBENV_HEADER = '# GRUB Environment Block\n';

const HASH = 0x23; // '#'
const LF = 0x0a;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');
const HEADER_BYTES = encoder.encode(GRUBENV_HEADER);

/**
 * Variable names we read and write: printable ASCII without `=` and `\`, not starting with `#`.
 * GRUB itself stores any name, but `=` would split the line elsewhere, `\` is taken as an escape
 * when GRUB skips lines, a leading `#` turns the line into a comment, and spaces or control
 * characters only ever appear in garbage. Strict on both sides so read-modify-write round-trips.
 */
export function isValidGrubenvName(name: string): boolean {
  if (name.length === 0 || name.startsWith('#')) return false;
  for (const c of name) {
    const code = c.charCodeAt(0);
    if (code < 0x21 || code > 0x7e || c === '=' || c === '\\') return false;
  }
  return true;
}

/**
 * Why a value cannot be stored, or undefined when it can. GRUB escapes only `\` and newline;
 * NUL cannot be stored at all (GRUB handles values as C strings), and other control characters
 * are refused so garbage is not mistaken for data. Tab and newline are allowed.
 */
export function grubenvValueProblem(value: string): string | undefined {
  const control = /[\u0000-\u0008\u000b-\u001f\u007f]/.exec(value);
  if (control) return `control character U+${control[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
  if (/\p{Surrogate}/u.test(value)) return 'unpaired UTF-16 surrogate (not encodable as UTF-8)';
  return undefined;
}

function invalid(source: string, what: string, details: Record<string, unknown> = {}): ClgwError {
  return new ClgwError('GRUBENV_INVALID', `${source}: ${what}`, { details: { source, ...details } });
}

function show(bytes: Uint8Array): string {
  return JSON.stringify(lenientUtf8.decode(bytes.subarray(0, 40)));
}

/**
 * Parses a GRUB environment block strictly into its variables, in block order.
 *
 * Accepted: exactly 1024 bytes; the signature line; `name=value` lines whose only escapes are
 * `\\` and `\` + newline; `#` comment lines before the first variable (Debian's `grub-editenv`
 * writes a warning line there); then `#` padding to the end. Everything else — wrong size,
 * missing signature, NUL bytes, a line without `=`, an unknown escape, a truncated last line, a
 * non-`#` byte after the padding began, a duplicate name, invalid UTF-8 — throws GRUBENV_INVALID
 * naming the offset and what is wrong.
 *
 * @param source names the block in error messages (the file path, when there is one).
 */
export function parseGrubenv(block: Uint8Array, source = 'grubenv'): Map<string, string> {
  if (block.length !== GRUBENV_SIZE) {
    throw invalid(source, `is ${block.length} bytes, a GRUB environment block is exactly ${GRUBENV_SIZE}`, {
      size: block.length,
    });
  }
  if (block.every((b) => b === 0)) throw invalid(source, 'is all zero bytes (never written or torn)');
  if (!HEADER_BYTES.every((b, i) => block[i] === b)) {
    throw invalid(source, `does not start with the signature ${JSON.stringify(GRUBENV_HEADER)}`, {
      start: show(block),
    });
  }
  const nul = block.indexOf(0);
  if (nul >= 0) throw invalid(source, `has a NUL byte at offset ${nul}`, { offset: nul });

  const vars = new Map<string, string>();
  const end = block.length;
  let p = HEADER_BYTES.length;
  let line = 2;
  while (p < end) {
    const lf = block.indexOf(LF, p);
    if (block[p] === HASH) {
      if (lf < 0 || vars.size > 0) {
        // The padding, which must be '#' up to the end. Comment lines are accepted only before
        // the first variable (where Debian's grub-editenv puts its warning line), so a torn tail
        // that happens to contain a newline is not taken for a comment.
        for (let i = p; i < end; i++) {
          if (block[i] !== HASH) {
            throw invalid(
              source,
              `byte 0x${block[i]!.toString(16).padStart(2, '0')} at offset ${i} after the '#' padding began at offset ${p}`,
              { offset: i, paddingStart: p },
            );
          }
        }
        return vars;
      }
      const comment = block.subarray(p, lf);
      if (comment.includes(BACKSLASH)) {
        // GRUB treats '\' as an escape even in comments, so the comment's end would shift.
        throw invalid(source, `comment line ${line} at offset ${p} contains a backslash`, {
          offset: p,
          line,
        });
      }
      decodeText(comment, source, `comment line ${line} at offset ${p}`);
      p = lf + 1;
      line++;
      continue;
    }

    const eq = block.indexOf(EQUALS, p);
    if (eq < 0 || (lf >= 0 && lf < eq)) {
      const stop = lf < 0 ? end : lf;
      throw invalid(source, `line ${line} at offset ${p} has no '=': ${show(block.subarray(p, stop))}`, {
        offset: p,
        line,
      });
    }
    const name = decodeText(block.subarray(p, eq), source, `name on line ${line} at offset ${p}`);
    if (!isValidGrubenvName(name)) {
      throw invalid(
        source,
        `line ${line} at offset ${p} has an invalid variable name ${JSON.stringify(name)}`,
        {
          offset: p,
          line,
          name,
        },
      );
    }

    // The value runs to the first newline not preceded by an escaping backslash.
    const raw: number[] = [];
    let q = eq + 1;
    let closed = false;
    let extraLines = 0;
    while (q < end) {
      const b = block[q]!;
      if (b === LF) {
        closed = true;
        break;
      }
      if (b === BACKSLASH) {
        const next = block[q + 1];
        if (next === undefined) break;
        if (next !== BACKSLASH && next !== LF) {
          throw invalid(
            source,
            `variable ${name} (line ${line}) has an unknown escape '\\${String.fromCharCode(next)}' at offset ${q}`,
            { offset: q, name },
          );
        }
        if (next === LF) extraLines++;
        raw.push(next);
        q += 2;
        continue;
      }
      raw.push(b);
      q++;
    }
    if (!closed) {
      throw invalid(
        source,
        `variable ${name} (line ${line}) is cut off: no newline before the end of the block`,
        {
          offset: p,
          name,
        },
      );
    }
    const value = decodeText(Uint8Array.from(raw), source, `value of ${name} (line ${line})`);
    const problem = grubenvValueProblem(value);
    if (problem) throw invalid(source, `value of ${name} (line ${line}) has a ${problem}`, { name });
    if (vars.has(name)) {
      throw invalid(source, `variable ${name} appears twice (again on line ${line})`, { name, line });
    }
    vars.set(name, value);
    p = q + 1;
    line += 1 + extraLines;
  }
  // The last line ended exactly at the end of the block: full, no padding — still valid.
  return vars;
}

function decodeText(bytes: Uint8Array, source: string, where: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw invalid(source, `${where} is not valid UTF-8`);
  }
}

/**
 * Serializes variables into a 1024-byte block in the map's insertion order, escaping `\` and
 * newline the way GRUB does. The header and every line end within the first
 * {@link GRUBENV_SECTOR} bytes, the rest is `#` padding (so a torn in-place write cannot mix two
 * variable sets). Throws GRUBENV_INVALID for a name or value that cannot be stored (see
 * {@link isValidGrubenvName}, {@link grubenvValueProblem}) or when the lines do not fit in that
 * first sector.
 */
export function serializeGrubenv(vars: ReadonlyMap<string, string>): Uint8Array {
  let text = GRUBENV_HEADER;
  for (const [name, value] of vars) {
    if (!isValidGrubenvName(name)) {
      throw invalid('grubenv', `cannot store variable name ${JSON.stringify(name)}`, { name });
    }
    if (typeof value !== 'string') {
      throw invalid('grubenv', `value of ${name} is a ${typeof value}, not a string`, { name });
    }
    const problem = grubenvValueProblem(value);
    if (problem) throw invalid('grubenv', `cannot store the value of ${name}: it has a ${problem}`, { name });
    text += `${name}=${escapeValue(value)}\n`;
  }
  const content = encoder.encode(text);
  if (content.length > GRUBENV_SECTOR) {
    throw invalid(
      'grubenv',
      `variables need ${content.length} bytes, they must fit in the block's first ${GRUBENV_SECTOR}-byte sector (of ${GRUBENV_SIZE}) so that a torn in-place write cannot mix two sets`,
      { needed: content.length, limit: GRUBENV_SECTOR },
    );
  }
  const block = new Uint8Array(GRUBENV_SIZE).fill(HASH);
  block.set(content);
  return block;
}

function escapeValue(value: string): string {
  return value.replace(/[\\\n]/g, (c) => `\\${c}`);
}

/** True when both hold the same variables with the same values in the same order (same bytes). */
export function grubenvEqual(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  const bEntries = [...b];
  let i = 0;
  for (const [name, value] of a) {
    const other = bEntries[i++]!;
    if (other[0] !== name || other[1] !== value) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// What GRUB itself makes of a block (load_env / save_env), for the boot emulator.

/** Index just past the end of the line starting at `p`, stepping over `\x` pairs as GRUB does. */
function grubNextLine(block: Uint8Array, p: number): number {
  let i = p;
  while (i < block.length) {
    if (block[i] === BACKSLASH) i += 2;
    else if (block[i] === LF) break;
    else i++;
  }
  return i + 1;
}

/** GRUB handles names and values as C strings: everything from the first NUL on is lost. */
function cString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return lenientUtf8.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/**
 * The variables GRUB's `load_env [VAR…]` would set from this block, or undefined when GRUB
 * rejects the block outright (shorter than its signature or not starting with it — then
 * `load_env` fails and sets nothing). Lenient exactly where GRUB is: any size, comment lines,
 * any `\x` escape, a later duplicate overriding an earlier one, and reading stops silently at
 * the first broken line, keeping what came before it.
 *
 * @param whitelist when given, only these names are set (like `load_env NAME…`).
 */
export function grubReadEnv(
  block: Uint8Array,
  whitelist?: readonly string[],
): Map<string, string> | undefined {
  // GRUB compares the signature and wants at least one byte more than it.
  if (block.length <= HEADER_BYTES.length || !HEADER_BYTES.every((b, i) => block[i] === b)) return undefined;
  const vars = new Map<string, string>();
  const end = block.length;
  let p = HEADER_BYTES.length;
  while (p < end) {
    if (block[p] !== HASH) {
      // The name runs to the next '=', even across a newline.
      const eq = block.indexOf(EQUALS, p);
      if (eq < 0) break;
      let q = eq + 1;
      while (q < end && block[q] !== LF) q += block[q] === BACKSLASH ? 2 : 1;
      if (q >= end) break;
      const raw: number[] = [];
      for (let i = eq + 1; i < q; i++) {
        if (block[i] === BACKSLASH) i++;
        raw.push(block[i]!);
      }
      const name = cString(block.subarray(p, eq));
      if (!whitelist || whitelist.includes(name)) {
        vars.delete(name);
        vars.set(name, cString(Uint8Array.from(raw)));
      }
      p = q;
    }
    p = grubNextLine(block, p);
  }
  return vars;
}

/**
 * The block after GRUB's `save_env` stores `name=value` in it (in place: an existing line is
 * rewritten and the rest shifted, a new one goes where the `#` padding starts; the size never
 * changes), or undefined when GRUB refuses — the block is broken (the last byte before the
 * padding is not a newline) or there is no room. The input is not modified.
 */
export function grubSetEnv(block: Uint8Array, name: string, value: string): Uint8Array | undefined {
  const buf = block.slice();
  const end = buf.length;
  const nameBytes = encoder.encode(name);
  const valueBytes = encoder.encode(escapeValue(value));
  const nl = nameBytes.length;
  const vl = valueBytes.length;

  let s = end - 1;
  while (s >= 0 && buf[s] === HASH) s--;
  if (s < 0 || buf[s] !== LF) return undefined;
  const space = s + 1;

  let p = HEADER_BYTES.length;
  while (p + nl + 1 < space) {
    if (nameBytes.every((b, i) => buf[p + i] === b) && buf[p + nl] === EQUALS) {
      const start = p + nl + 1;
      let len = 0;
      while (start + len < end && buf[start + len] !== LF) len += buf[start + len] === BACKSLASH ? 2 : 1;
      if (start + len >= end) return undefined;
      if (end - space < vl - len) return undefined;
      if (vl < len) {
        buf.copyWithin(start + vl, start + len, end);
        buf.fill(HASH, space - (len - vl), space);
      } else {
        buf.copyWithin(start + vl, start + len, end - (vl - len));
      }
      buf.set(valueBytes, start);
      buf[start + vl] = LF;
      return buf;
    }
    p = grubNextLine(buf, p);
  }

  if (end - space < nl + 1 + vl + 1) return undefined;
  buf.set(nameBytes, space);
  buf[space + nl] = EQUALS;
  buf.set(valueBytes, space + nl + 1);
  buf[space + nl + 1 + vl] = LF;
  return buf;
}
