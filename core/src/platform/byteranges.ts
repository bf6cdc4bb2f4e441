/**
 * The body of a multi-range response (RFC 9110 §14.6, `multipart/byteranges`): parts, each a
 * header block with its Content-Range and then exactly that many bytes, between delimiter lines
 * of the boundary. Pure: fed the body piece by piece, hands each part's bytes to that part's sink.
 */
import { ClgwError } from '../errors.js';

/** Bytes `start…end` (inclusive) of a file. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Where one part's bytes go; `end` once its last byte was taken. */
export interface PartSink {
  /** A returned promise holds the next piece back until it settles. */
  data(piece: Buffer): Promise<void> | undefined;
  end(): Promise<void> | undefined;
}

/** Longest line of a part's header block, and longest header block, that is accepted. */
const MAX_LINE = 1024;
const MAX_HEADER_LINES = 16;

/** Bytes a server may add per part for its delimiter and header lines (MAX_LINE and then some). */
export const PART_OVERHEAD_BYTES = 2048;

/** The `boundary` of a `multipart/byteranges` Content-Type, or undefined when it is not one. */
export function byterangesBoundary(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const [type, ...params] = contentType.split(';');
  if (type?.trim().toLowerCase() !== 'multipart/byteranges') return undefined;
  for (const p of params) {
    const m = /^\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s";]{1,70}))\s*$/i.exec(p);
    if (m) return m[1] ?? m[2];
  }
  return undefined;
}

/**
 * Parses a multipart/byteranges body whose parts must be exactly `ranges`, in order, of a file of
 * `size` bytes (a server may merge or reorder ranges; this client then asks for them one by one
 * instead). `partSink(i)` is asked for the sink of part i when its bytes begin. Anything else —
 * another range, a header block too long, bytes where a delimiter belongs, a body that ends early —
 * fails with RANGE_NOT_SUPPORTED (not transient) naming `what` and the offending part.
 */
export class ByteRangesParser {
  private readonly delimiter: string;
  private part = 0;
  private state: 'delimiter' | 'headers' | 'body' | 'after' | 'epilogue' = 'delimiter';
  /** Bytes of the control line being read. */
  private line = '';
  private headerLines = 0;
  private contentRange: string | undefined;
  private remaining = 0;
  private sink: PartSink | undefined;

  constructor(
    boundary: string,
    private readonly ranges: readonly ByteRange[],
    private readonly size: number,
    private readonly partSink: (index: number) => PartSink,
    private readonly what: string,
  ) {
    this.delimiter = `--${boundary}`;
  }

  /** Takes the next piece of the body; resolves once every part sink took what was in it. */
  async data(piece: Buffer): Promise<void> {
    let at = 0;
    while (at < piece.length) {
      if (this.state === 'body') {
        const n = Math.min(this.remaining, piece.length - at);
        await this.sink?.data(piece.subarray(at, at + n));
        at += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          await this.sink?.end();
          this.sink = undefined;
          this.part++;
          this.state = 'after';
        }
        continue;
      }
      if (this.state === 'epilogue') return;
      // A control line: up to its LF.
      const lf = piece.indexOf(0x0a, at);
      const stop = lf < 0 ? piece.length : lf;
      this.line += piece.toString('latin1', at, stop);
      if (this.line.length > MAX_LINE) throw this.refused(`a line of more than ${MAX_LINE} bytes`);
      at = stop;
      if (lf < 0) return;
      at++;
      const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      this.onLine(line);
    }
  }

  /** The body ended: every part must have come, and the closing delimiter. */
  end(): void {
    if (this.state !== 'epilogue')
      throw this.refused(`the body ended after ${this.part} of ${this.ranges.length} parts`);
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'delimiter':
        // What may come before the first delimiter: empty lines (a preamble of nothing).
        if (line === '') return;
        if (line !== this.delimiter)
          throw this.refused(`"${line.slice(0, 80)}" where the first delimiter belongs`);
        this.startHeaders();
        return;
      case 'headers': {
        if (line !== '') {
          if (++this.headerLines > MAX_HEADER_LINES)
            throw this.refused(`a part with over ${MAX_HEADER_LINES} header lines`);
          const m = /^content-range\s*:\s*(.*)$/i.exec(line);
          if (m) this.contentRange = m[1]?.trim();
          return;
        }
        const want = this.ranges[this.part] as ByteRange;
        if (this.contentRange !== `bytes ${want.start}-${want.end}/${this.size}`)
          throw this.refused(
            `part ${this.part + 1} is "${this.contentRange ?? 'without Content-Range'}", bytes ${want.start}-${want.end}/${this.size} was asked`,
          );
        this.remaining = want.end - want.start + 1;
        this.sink = this.partSink(this.part);
        this.state = 'body';
        return;
      }
      case 'after':
        // The CRLF that ends a part's bytes belongs to the delimiter line that follows.
        if (line === '') return;
        if (line === `${this.delimiter}--`) {
          if (this.part < this.ranges.length)
            throw this.refused(`the body closed after ${this.part} of ${this.ranges.length} parts`);
          this.state = 'epilogue';
          return;
        }
        if (line !== this.delimiter) throw this.refused(`"${line.slice(0, 80)}" where a delimiter belongs`);
        if (this.part >= this.ranges.length)
          throw this.refused(`more than the ${this.ranges.length} parts asked`);
        this.startHeaders();
        return;
      default:
        return;
    }
  }

  private startHeaders(): void {
    this.state = 'headers';
    this.headerLines = 0;
    this.contentRange = undefined;
  }

  private refused(why: string): ClgwError {
    return new ClgwError('RANGE_NOT_SUPPORTED', `${this.what}: multi-range answer not usable: ${why}`, {
      transient: false,
      details: { multipart: true, part: this.part, parts: this.ranges.length },
    });
  }
}
