import { isAlias, isMap, isPair, isScalar, isSeq, Lexer, LineCounter, type Node, parseDocument } from 'yaml';
import { ClgwError } from '../errors.js';
import { type Compat, formatPath, validateCompat } from './schema.js';

/**
 * Turning compat.yaml bytes into a validated `Compat`. Pure: no file or network access.
 *
 * The YAML subset accepted is deliberately small — block or flow mappings, lists and plain or
 * quoted scalars. A signed release document has no use for anchors, aliases, tags, directives or
 * several documents per file, and each of them is a way to make two readers disagree about what
 * was signed (or to blow up memory, as "billion laughs" alias bombs do), so all are refused.
 */

/** Far above any real compat.yaml (a few KiB), small enough that parsing it costs nothing. */
export const MAX_COMPAT_BYTES = 256 * 1024;
/** Schema v1 nests 6 levels deep; anything far deeper is hostile. */
const MAX_DEPTH = 16;
/**
 * The most YAML tokens (scalars, indicators, brackets, comments) a document may hold. The largest
 * schema-v1 document — three platforms, each with chunk indexes, packs and all three containers —
 * has about 600; 120,000 one-digit items in a flow list (240 KB) exhaust the agent's 48 MiB heap in
 * the parser, and this many cost a few MiB at most.
 */
const MAX_TOKENS = 10_000;

/**
 * Parses and validates compat.yaml. Throws `YAML_INVALID` (size, encoding, nesting or token count
 * beyond the limits — checked before parsing —, syntax, forbidden YAML features, numbers out of
 * range — with line and column) or `COMPAT_INVALID` (schema; numbers not in plain decimal digits).
 * `source` names the document in messages (a file path or URL).
 */
export function parseCompat(text: string | Uint8Array, source = 'compat.yaml'): Compat {
  const str = decode(text, source);
  prescan(str, source);
  const lineCounter = new LineCounter();
  const doc = parseDocument(str, {
    schema: 'core',
    version: '1.2',
    strict: true,
    uniqueKeys: true,
    stringKeys: true,
    merge: false,
    resolveKnownTags: false,
    customTags: [],
    prettyErrors: true,
    lineCounter,
  });
  const at = (offset: number | undefined): string => {
    if (offset === undefined) return '';
    const { line, col } = lineCounter.linePos(offset);
    return ` at line ${line}, column ${col}`;
  };

  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
    const reason = first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? first.code;
    throw new ClgwError('YAML_INVALID', `${source} is not valid YAML${where}: ${reason}`, {
      details: { source, yamlCode: first.code, line: pos?.line, column: pos?.col },
    });
  }
  if (doc.directives?.yaml.explicit)
    throw yamlInvalid(source, 'a %YAML directive is not allowed (the document is YAML 1.2)');

  const numbers = walk(doc.contents as Node | null, (problem, offset, path) =>
    yamlInvalid(source, `${problem}${path ? ` (${path})` : ''}${at(offset)}`),
  );

  // Aliases are already refused, so conversion cannot expand anything; 0 makes that doubly sure.
  const data = doc.toJS({ maxAliasCount: 0 }) as unknown;
  const compat = validateCompat(data, source);
  // Only now: a number where a string belongs (`version: 1.10`) is better told by the schema.
  refuseLenientNumbers(numbers, source, at);
  return compat;
}

/** A whole number as a publisher writes it: decimal digits, no sign, point, exponent or leading 0. */
const PLAIN_DECIMAL = /^(?:0|[1-9][0-9]*)$/;
/** A rollout percentage, the one number that is not whole: the same, with up to two decimals. */
const PLAIN_PERCENT = /^(?:0|[1-9][0-9]*)(?:\.[0-9]{1,2})?$/;
const PERCENT_PATH = /^platforms\.[a-z]+\.release\.rollout\.percent$/;

/**
 * Refuses numbers not written in plain decimal digits. Every number in schema v1 is a whole number
 * (the schema version, serial, sizes, chunk size) but a rollout's percentage (`12.5`: a point and
 * at most two decimals), and once the document validated every number in it is one of them. YAML 1.2 reads `8388608.0`, `0x800000`, `0o40000000`, `8.388608e6`, `+8388608`
 * and `08388608` all as 8388608, but other readers do not (YAML 1.1 reads `010` as 8, some keep
 * `8388608.0` a float): what a signed document means must not depend on who reads it.
 */
function refuseLenientNumbers(
  numbers: readonly NumberSeen[],
  source: string,
  at: (offset: number | undefined) => string,
): void {
  const problems = numbers
    .filter((n) => !(PERCENT_PATH.test(n.path) ? PLAIN_PERCENT : PLAIN_DECIMAL).test(n.text))
    .map((n) =>
      PERCENT_PATH.test(n.path)
        ? `${n.path}: expected a percentage in plain decimal digits with at most two decimals, such as ` +
          `${n.value} (got ${n.text})${at(n.offset)}`
        : `${n.path || '(document)'}: expected a whole number in plain decimal digits, such as ` +
          `${n.value} (got ${n.text})${at(n.offset)}`,
    );
  if (problems.length === 0) return;
  const shown = problems.slice(0, 5);
  const more = problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : '';
  throw new ClgwError('COMPAT_INVALID', `${source} is invalid: ${shown.join('; ')}${more}`, {
    details: { source, problems },
  });
}

function decode(text: string | Uint8Array, source: string): string {
  const size = typeof text === 'string' ? utf8Length(text) : text.byteLength;
  if (size > MAX_COMPAT_BYTES)
    throw new ClgwError(
      'YAML_INVALID',
      `${source} exceeds the ${MAX_COMPAT_BYTES}-byte limit of a release document`,
      { details: { source, limit: MAX_COMPAT_BYTES } },
    );
  if (typeof text === 'string') return text;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch (e) {
    throw new ClgwError('YAML_INVALID', `${source} is not valid UTF-8`, { cause: e, details: { source } });
  }
}

/**
 * UTF-8 length without allocating the encoded copy, stopping once past the limit, so an oversized
 * string is refused cheaply.
 */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
    if (n > MAX_COMPAT_BYTES) return n;
  }
  return n;
}

function yamlInvalid(source: string, message: string): ClgwError {
  return new ClgwError('YAML_INVALID', `${source} is not allowed: ${message}`, { details: { source } });
}

/** The lexer's zero-width markers (yaml's CST): document start, flow collection cut off, scalar next. */
const DOCUMENT = '\x02';
const FLOW_END = '\x18';
const SCALAR = '\x1f';

/**
 * Refuses a document nested deeper than MAX_DEPTH, or of more than MAX_TOKENS tokens, from its
 * tokens alone, before the parser builds anything: the parser builds the whole tree before a depth
 * can be checked on it, and 80 KB of `[` nested 40,000 deep exhausts the agent's heap in there (it
 * then crashed at every start, resuming the same check). The lexer keeps no tree, and neither does
 * this: a counter of open flow collections, and a stack of the indents of open block ones (at most
 * MAX_DEPTH + 2 entries: each push past the limit is refused).
 *
 * A level is what `walk` counts: the number of collections around a node. Flow collections count by
 * their brackets; block collections by the indicators that open them (`-` a sequence; `?` or `:`
 * a mapping), at the indent the parser gives them — a line's leading spaces, plus each indicator at
 * its start, so `- - - x` opens three sequences on one line. Content at a smaller indent closes the
 * deeper ones; a sequence may be a mapping's value at the mapping's own indent.
 */
function prescan(str: string, source: string): void {
  const refuse = (problem: string, offset: number): never => {
    const before = str.slice(0, offset);
    const line = before.split('\n').length;
    const col = offset - before.lastIndexOf('\n');
    throw yamlInvalid(source, `${problem} at line ${line}, column ${col}`);
  };
  /** Open block collections, innermost last: indent × 2, plus 1 for a sequence. */
  const open: number[] = [];
  const indentOf = (entry: number) => entry >> 1;
  const isSeqEntry = (entry: number) => (entry & 1) === 1;
  let flow = 0;
  let tokens = 0;
  let offset = 0;
  let indent = 0;
  let atLineStart = true;
  let scalarNext = false;
  let blockScalar = false;

  /** Content or an indicator at `indent` closes the block collections it lies outside of. */
  const closeDeeper = (seqIndicator: boolean): void => {
    while (open.length > 0 && indentOf(open.at(-1)!) > indent) open.pop();
    const top = open.at(-1);
    // A key (or other content) at a sequence's own indent ends that sequence: it was a map's value.
    if (top !== undefined && indentOf(top) === indent && isSeqEntry(top) && !seqIndicator) open.pop();
  };
  const deeper = (at: number): void => {
    const level = open.length + flow - 1;
    if (level > MAX_DEPTH) refuse(`nesting deeper than ${MAX_DEPTH} levels (level ${level} opens here)`, at);
  };

  for (const token of new Lexer().lex(str)) {
    const at = offset;
    if (token === DOCUMENT) continue;
    if (token === FLOW_END) {
      flow = 0;
      continue;
    }
    if (token === SCALAR) {
      scalarNext = true;
      continue;
    }
    offset += token.length;
    if (scalarNext) {
      scalarNext = false;
      if (blockScalar) {
        // A block scalar's text, up to and including its last line break.
        blockScalar = false;
        atLineStart = true;
        indent = 0;
        continue;
      }
    }
    const first = token[0];
    if (token === '' || token === '\n' || token === '\r\n') {
      atLineStart = true;
      indent = 0;
      continue;
    }
    if (first === ' ' || first === '\t') {
      // Tabs count too (the parser refuses them as indentation): a larger indent closes less.
      if (atLineStart) indent += token.length;
      continue;
    }
    if (++tokens > MAX_TOKENS) refuse(`more than ${MAX_TOKENS} YAML tokens`, at);
    if (first === '#' || first === '%' || first === ',') continue;
    if (token === '---' || token === '...') {
      open.length = 0;
      flow = 0;
      continue;
    }
    if (token === '[' || token === '{') {
      if (flow === 0) closeDeeper(false);
      flow += 1;
      deeper(at);
    } else if (token === ']' || token === '}') {
      flow = Math.max(0, flow - 1);
    } else if (flow > 0) {
      // Inside brackets indentation means nothing, and only brackets nest.
    } else if (token === '-' || token === '?' || token === ':') {
      const seq = token === '-';
      closeDeeper(seq);
      const top = open.at(-1);
      if (top === undefined || indentOf(top) < indent || isSeqEntry(top) !== seq) {
        open.push(indent * 2 + (seq ? 1 : 0));
        deeper(at);
      }
      if (atLineStart) indent += token.length;
      continue;
    } else {
      closeDeeper(false);
      if (first === '|' || first === '>') blockScalar = true;
    }
    atLineStart = false;
  }
}

type Fail = (problem: string, offset: number | undefined, path: string) => ClgwError;

/** A number in the document: where, as written, and as read. */
interface NumberSeen {
  path: string;
  text: string;
  value: number;
  offset: number | undefined;
}

/**
 * Refuses what the composer accepted but we do not: anchors, aliases, explicit tags, nesting
 * deeper than MAX_DEPTH, and numbers a JS number cannot hold exactly. Iterative, so a hostile
 * depth cannot overflow the stack here either. Returns every number with its source text.
 */
function walk(root: Node | null, fail: Fail): NumberSeen[] {
  const numbers: NumberSeen[] = [];
  const stack: { node: unknown; path: (string | number)[] }[] = [{ node: root, path: [] }];
  while (stack.length > 0) {
    const { node, path } = stack.pop()!;
    if (node === null || node === undefined) continue;
    const offset = (node as { range?: [number, number, number] }).range?.[0];
    const where = formatPath(path);
    if (path.length > MAX_DEPTH) throw fail(`nesting deeper than ${MAX_DEPTH} levels`, offset, where);
    if (isAlias(node)) throw fail(`alias *${node.source} is not allowed`, offset, where);
    if (isScalar(node) || isMap(node) || isSeq(node)) {
      if (node.anchor) throw fail(`anchor &${node.anchor} is not allowed`, offset, where);
      if (node.tag)
        throw fail(`tag ${node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed`, offset, where);
    }
    if (isScalar(node)) {
      checkNumber(node.value, node.source, offset, where, fail);
      if (typeof node.value === 'number')
        numbers.push({ path: where, text: node.source ?? String(node.value), value: node.value, offset });
    } else if (isMap(node)) {
      // Pushed last-to-first so that the first offence in document order is the one reported.
      for (let i = node.items.length - 1; i >= 0; i--) {
        const pair = node.items[i];
        if (!isPair(pair)) continue;
        const key = pair.key as Node | null;
        // stringKeys already made every key a scalar; its text names the child in messages.
        const name = isScalar(key) ? String(key.value) : '?';
        stack.push({ node: pair.value, path: [...path, name] });
        if (key) stack.push({ node: key, path });
      }
    } else if (isSeq(node)) {
      for (let i = node.items.length - 1; i >= 0; i--)
        stack.push({ node: node.items[i], path: [...path, i] });
    }
  }
  return numbers;
}

function checkNumber(
  value: unknown,
  source: string | undefined,
  offset: number | undefined,
  where: string,
  fail: Fail,
): void {
  if (typeof value !== 'number') return;
  const text = source ?? String(value);
  if (!Number.isFinite(value)) throw fail(`number ${text} is out of range`, offset, where);
  // 99999999999999999999 parses as 1e20: the document says one thing, the number holds another.
  if (Number.isInteger(value) && !Number.isSafeInteger(value))
    throw fail(`number ${text} is too large to be exact (max ${Number.MAX_SAFE_INTEGER})`, offset, where);
}
