import type { Clock } from './clock.js';
import { type FailureContext, hostPort, timedOut } from './http-errors.js';

/** Where a body goes: a piece at a time, each valid only during the call. */
export interface BodySink {
  /** A returned promise holds the next piece back until it settles; a rejection or throw fails the body. */
  data(chunk: Buffer): Promise<void> | undefined;
}

export interface BodyLimits {
  clock: Clock;
  ctx: FailureContext;
  /** No body byte for this long → TIMED_OUT (idle). */
  idleMs: number;
  /** A body slower than this over `windowMs` → TIMED_OUT (throughput); 0: no minimum. */
  minBytesPerSecond: number;
  windowMs: number;
  expected?: number | undefined;
}

/**
 * Watches a response body for a server that stops sending (idle) or sends too slowly (throughput),
 * and fails it through `fail`. Time spent waiting on a slow consumer (back-pressure: our own disk)
 * is not held against the server: `behind()` says when the consumer is the one holding up.
 */
export class BodyWatch {
  received = 0;
  private readonly stopWatch = new AbortController();
  private lastByteAt: number;
  private windowStart: number;
  private windowBytes = 0;
  private windowBackpressured = false;

  constructor(
    private readonly o: BodyLimits,
    private readonly behind: () => boolean,
    private readonly fail: (e: Error) => void,
  ) {
    this.lastByteAt = o.clock.now();
    this.windowStart = this.lastByteAt;
    void this.watch();
  }

  /** `bytes` more of the body arrived. */
  count(bytes: number): void {
    this.received += bytes;
    this.windowBytes += bytes;
    this.lastByteAt = this.o.clock.now();
  }

  stop(): void {
    this.stopWatch.abort();
  }

  private async watch(): Promise<void> {
    const { clock, idleMs, windowMs, minBytesPerSecond } = this.o;
    const tick = Math.max(25, Math.min(1000, Math.floor(Math.min(idleMs, windowMs) / 4)));
    for (;;) {
      try {
        await clock.sleep(tick, this.stopWatch.signal);
      } catch {
        return;
      }
      const now = clock.now();
      const ctx = { ...this.o.ctx, received: this.received, expected: this.o.expected };
      if (this.behind()) {
        this.lastByteAt = now;
        this.windowBackpressured = true;
      }
      if (now - this.lastByteAt >= idleMs) {
        this.stop();
        this.fail(timedOut('idle', idleMs, ctx));
        return;
      }
      const elapsed = now - this.windowStart;
      if (minBytesPerSecond > 0 && elapsed >= windowMs) {
        if (!this.windowBackpressured && this.windowBytes * 1000 < minBytesPerSecond * elapsed) {
          const what =
            `${hostPort(ctx.url)} sent ${this.windowBytes} bytes in ${elapsed} ms, below the minimum of ` +
            `${minBytesPerSecond} bytes/s over ${windowMs} ms`;
          this.stop();
          this.fail(timedOut('throughput', windowMs, ctx, what));
          return;
        }
        this.windowStart = now;
        this.windowBytes = 0;
        this.windowBackpressured = false;
      }
    }
  }
}

/**
 * A sink that gathers the pieces of a body in `buffer` and hands it to `flush(length)` each time
 * it is full; `end()` flushes what is left. A piece is valid only during the call, so the part of
 * one that did not fit waits as a copy while the buffer is flushed.
 */
export function bufferingSink(
  buffer: Buffer,
  flush: (length: number) => Promise<void>,
): BodySink & { end(): Promise<void> } {
  let used = 0;
  const data = (piece: Buffer): Promise<void> | undefined => {
    const n = piece.copy(buffer, used);
    used += n;
    if (used < buffer.length) return undefined;
    const rest = n < piece.length ? Buffer.from(piece.subarray(n)) : undefined;
    used = 0;
    return flush(buffer.length).then(() => (rest ? data(rest) : undefined));
  };
  return {
    data,
    end: async () => {
      const length = used;
      used = 0;
      if (length > 0) await flush(length);
    },
  };
}
