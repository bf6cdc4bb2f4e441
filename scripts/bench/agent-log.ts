/**
 * Reads the timings of one boot-time update out of the agent's JSON-lines log (clgw.log) and
 * summarises benchmark samples. Pure: text in, numbers out.
 */

/** One parsed log line: its timestamp in ms since the epoch, its message and its other fields. */
export interface LogLine {
  at: number;
  msg: string;
  fields: Record<string, unknown>;
}

/** When each step of one update happened (ms since the epoch) and the agent's peak RSS it logged. */
export interface UpdateTimings {
  checking: number;
  /** The root artifact's `writing artifact into slot` line: its download starts. */
  rootWrite: number;
  /** `update state: verifying`: the root artifact is written, hashed and fsynced. */
  verifying: number;
  /** `slot verified by read-back`: boot and root read back and re-hashed. */
  verified: number;
  rebooting: number;
  /** Size of the root artifact as the agent logged it. */
  rootBytes: number;
  /** Largest `maxRssKiB` of the `update state: …` lines. */
  peakRssKiB: number;
}

/** Parses JSON lines; lines that are not JSON objects with `time` and `msg` are skipped. */
export function parseLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch {
      continue;
    }
    if (typeof obj !== 'object' || obj === null) continue;
    const { time, msg, ...fields } = obj as Record<string, unknown>;
    const at = typeof time === 'string' ? Date.parse(time) : Number.NaN;
    if (typeof msg !== 'string' || Number.isNaN(at)) continue;
    out.push({ at, msg, fields });
  }
  return out;
}

/**
 * The timings of the first complete update in the log, or a message saying which line is missing
 * (and the failure the agent logged, if any) so a broken run is named, not silently mismeasured.
 */
export function updateTimings(lines: LogLine[]): UpdateTimings | { missing: string; failure?: string } {
  const first = (pred: (l: LogLine) => boolean) => lines.find(pred);
  const state = (s: string) => first((l) => l.msg === `update state: ${s}`);
  const failed = state('failed');
  const failure = failed ? JSON.stringify(failed.fields.error ?? failed.fields) : undefined;
  const need: [string, LogLine | undefined][] = [
    ['update state: checking', state('checking')],
    [
      'writing artifact into slot (artifact root)',
      first((l) => l.msg === 'writing artifact into slot' && l.fields.artifact === 'root'),
    ],
    ['update state: verifying', state('verifying')],
    ['slot verified by read-back', first((l) => l.msg === 'slot verified by read-back')],
    ['update state: rebooting', state('rebooting')],
  ];
  for (const [what, line] of need) {
    if (!line) return failure === undefined ? { missing: what } : { missing: what, failure };
  }
  const [checking, rootWrite, verifying, verified, rebooting] = need.map(([, l]) => l!);
  let peakRssKiB = 0;
  for (const l of lines) {
    const rss = l.fields.maxRssKiB;
    if (l.msg.startsWith('update state: ') && typeof rss === 'number' && rss > peakRssKiB) peakRssKiB = rss;
  }
  return {
    checking: checking!.at,
    rootWrite: rootWrite!.at,
    verifying: verifying!.at,
    verified: verified!.at,
    rebooting: rebooting!.at,
    rootBytes: Number(rootWrite!.fields.size),
    peakRssKiB,
  };
}

/**
 * Start and end of the first update in the log (`checking` → `rebooting`) and the largest
 * `maxRssKiB` logged, without asking for per-artifact lines: what a delta update, whose download
 * may log differently, is measured by.
 */
export function updateSpan(
  lines: LogLine[],
): { checking: number; rebooting: number; peakRssKiB: number } | { missing: string; failure?: string } {
  const state = (s: string) => lines.find((l) => l.msg === `update state: ${s}`);
  const failed = state('failed');
  const failure = failed ? JSON.stringify(failed.fields.error ?? failed.fields) : undefined;
  const checking = state('checking');
  const rebooting = state('rebooting');
  if (!checking || !rebooting) {
    const missing = !checking ? 'update state: checking' : 'update state: rebooting';
    return failure === undefined ? { missing } : { missing, failure };
  }
  let peakRssKiB = 0;
  for (const l of lines) {
    const rss = l.fields.maxRssKiB;
    if (l.msg.startsWith('update state: ') && typeof rss === 'number' && rss > peakRssKiB) peakRssKiB = rss;
  }
  return { checking: checking.at, rebooting: rebooting.at, peakRssKiB };
}

/**
 * Why the agent will not reach `rebooting` on its own, if its log already says so: the update
 * failed, or a check ended back in idle (nothing to install, or the update was refused).
 */
export function settledWithoutInstall(lines: LogLine[]): string | undefined {
  const failed = lines.find((l) => l.msg === 'update state: failed');
  if (failed) return `update failed: ${JSON.stringify(failed.fields.error ?? failed.fields)}`;
  const checking = lines.findIndex((l) => l.msg === 'update state: checking');
  if (checking >= 0 && lines.slice(checking).some((l) => l.msg === 'update state: idle'))
    return 'the boot-time check ended in idle without installing';
  return undefined;
}

/** Median, min and max of a non-empty sample. */
export function summarise(values: number[]): { median: number; min: number; max: number } {
  if (values.length === 0) throw new Error('summarise: no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** Bytes over seconds in MB/s, MB = 10^6 bytes. */
export function mbps(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}
