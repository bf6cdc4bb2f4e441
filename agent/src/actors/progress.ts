/**
 * Live progress of the update in progress, kept out of the machine (it changes many times a
 * second and never needs to survive a restart: the journal's durable offsets do).
 */
export interface Progress {
  phase: string;
  bytes: number;
  total: number;
  /**
   * While artifacts are written into the slot: of `bytes`, those fetched from the mirror in this
   * attempt, and those taken locally (copied from the active slot, or already in the target slot).
   */
  downloaded?: number;
  reused?: number;
  /** Bytes per second over the last few seconds. */
  rate: number;
  startedAt: number;
}

export class ProgressTracker {
  private current: Progress | undefined;
  private samples: { t: number; bytes: number }[] = [];

  constructor(private readonly now: () => number) {}

  start(phase: string, total: number, bytes = 0): void {
    this.current = { phase, bytes, total, rate: 0, startedAt: this.now() };
    this.samples = [{ t: this.now(), bytes }];
  }

  update(bytes: number, sources?: { downloaded: number; reused: number }): void {
    if (!this.current) return;
    const t = this.now();
    this.current.bytes = bytes;
    if (sources) {
      this.current.downloaded = sources.downloaded;
      this.current.reused = sources.reused;
    }
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 5000) this.samples.shift();
    const first = this.samples[0]!;
    this.current.rate = t > first.t ? ((bytes - first.bytes) * 1000) / (t - first.t) : 0;
  }

  clear(): void {
    this.current = undefined;
    this.samples = [];
  }

  snapshot(): Progress | undefined {
    return this.current ? { ...this.current } : undefined;
  }
}
