import { readFileSync } from 'node:fs';

/**
 * Keeping a download's garbage from piling up. Node's HTTP client (under got) hands the body over
 * in buffers of one TLS record (16 KiB) each, allocated twice — the decrypted record, then the
 * parser's copy of the body in it — each its own allocation outside the JavaScript heap, dead as
 * soon as the sink has copied it into a write buffer; V8 frees them only when it collects the
 * young generation, and that fills slowly (a buffer's JavaScript side is a few hundred bytes).
 * Left alone, 10–20 MiB of dead buffers sit in the agent's memory at 200 MB/s, a third of its
 * budget (SPEC §6: 256 MiB for all of the appliance's own software). With `--expose-gc` (the
 * agent's unit sets it) the download collects the young generation itself every YOUNG_GC_BYTES,
 * which bounds them to a few MiB. Measured on the 2-vCPU development VM (512 MiB full install,
 * RssAnon peak): 28.4–28.6 MiB every 2 MiB, 25.6–25.9 every 1 MiB, 25.4–25.5 every 512 KiB; a
 * scavenge of the 1 MiB young generation takes 0.1–0.4 ms, so every 1 MiB costs 0.05–0.2 s of
 * the main thread per 512 MiB. Without the flag this does nothing.
 */

/** Bytes received between two collections of the young generation. */
export const YOUNG_GC_BYTES = 1024 * 1024;

type Collect = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => void;

/** Counts received bytes and collects the young generation every YOUNG_GC_BYTES of them. */
export class GarbageGauge {
  private since = 0;
  private readonly collect = (globalThis as { gc?: Collect }).gc;

  constructor(private readonly every = YOUNG_GC_BYTES) {}

  received(bytes: number): void {
    if (!this.collect) return;
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    this.collect({ type: 'minor' });
  }
}

/**
 * Starts a full collection that V8 runs incrementally beside the work (`execution: 'async'`):
 * every 16 MiB of an adaptive update. Objects that outlive two young-generation collections — a
 * Range request's state lives across many, and each of got's requests brings its options, its
 * stream and Node's request and response — move to the old generation, which V8 otherwise lets
 * grow by several MiB of dead objects before it collects it. Measured on the 2-vCPU development
 * VM (1 % delta of a 512 MiB image, RssAnon peak): 30.6–31.0 MiB every 64 MiB, 26.5–27.6 every
 * 16 MiB. (With the hand-written HTTP reader got replaced, whose requests left less behind: every
 * 64 MiB was enough, and every 8 MiB cost 13 % of the update time for ~1 MiB.) A synchronous
 * full collection did not lower the peak. Not done before a streamed download: its old
 * generation does not grow, and the marking beside it cost ~14 % of the rate for ~1 MiB. Without
 * `--expose-gc` this does nothing.
 */
export function collectOldGeneration(): void {
  (globalThis as { gc?: Collect }).gc?.({ type: 'major', execution: 'async' });
}

/**
 * The process's peak resident set in KiB: VmHWM from /proc/self/status. Not `getrusage`'s
 * `ru_maxrss`, which Linux carries over `execve` from the process that forked this one — started
 * from a larger parent (the benchmark, a test runner), it reports the parent's peak, not ours.
 * Off Linux, the rusage figure is all there is.
 */
export function peakRssKiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // No procfs: below.
  }
  return process.resourceUsage().maxRSS;
}
