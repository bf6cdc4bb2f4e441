import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Clock } from './clock.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Resolves once every line logged so far is on disk. */
  flush(): Promise<void>;
}

export interface FileLoggerOptions {
  file: string;
  clock: Clock;
  /** Rotate when the file grows past this many bytes. */
  maxBytes?: number;
  /** Rotated files kept (clgw.log.1 … clgw.log.N); older ones are deleted. */
  keep?: number;
  /** Also write each line to this stream (the agent's stderr under systemd goes to the journal). */
  echo?: NodeJS.WritableStream;
  minLevel?: LogLevel;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Structured (one JSON object a line) log, rotated by size so that logs can never fill the data
 * partition: at most (keep + 1) × maxBytes on disk. Writes are queued so lines keep their order.
 */
export function fileLogger(options: FileLoggerOptions): Logger {
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const keep = options.keep ?? 4;
  const minLevel = LEVELS[options.minLevel ?? 'info'];
  let queue: Promise<void> = fs.mkdir(path.dirname(options.file), { recursive: true }).then(() => undefined);
  let size: number | undefined;

  async function rotate(): Promise<void> {
    await fs.rm(`${options.file}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) {
      await fs.rename(`${options.file}.${i}`, `${options.file}.${i + 1}`).catch(() => undefined);
    }
    await fs.rename(options.file, `${options.file}.1`).catch(() => undefined);
    size = 0;
  }

  async function append(line: string): Promise<void> {
    if (size === undefined)
      size = await fs.stat(options.file).then(
        (s) => s.size,
        () => 0,
      );
    if (size + line.length > maxBytes && size > 0) await rotate();
    await fs.appendFile(options.file, line);
    size += Buffer.byteLength(line);
  }

  function log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (LEVELS[level] < minLevel) return;
    const line = `${JSON.stringify({ time: new Date(options.clock.now()).toISOString(), level, msg, ...fields })}\n`;
    options.echo?.write(line);
    // A log write that fails must not take the agent down; the next line retries.
    queue = queue.then(() => append(line)).catch(() => undefined);
  }

  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    flush: () => queue,
  };
}

/** A logger that keeps lines in memory — for pure-core tests that want to assert on logging. */
export function memoryLogger(): Logger & {
  lines: { level: LogLevel; msg: string; fields?: Record<string, unknown> }[];
} {
  const lines: { level: LogLevel; msg: string; fields?: Record<string, unknown> }[] = [];
  const push = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, fields });
  };
  return {
    lines,
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    flush: async () => undefined,
  };
}
