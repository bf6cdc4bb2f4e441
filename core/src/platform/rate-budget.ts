import type { Clock } from './clock.js';

/**
 * A budget for the bytes of update downloads (issue #22): on average at most `bytesPerSecond`,
 * shared by every request that books against it, so that an update leaves the rest of the
 * customer's uplink to the calls the appliance carries. `delay(bytes)` books a piece of body and
 * says how long to hold the body before taking the next one; holding it stops reading the socket,
 * and TCP's flow control slows the sender. A burst of `burstMs` worth is allowed after a pause.
 */
export class RateBudget {
  private nextFree: number;
  /** Off: nothing is held (see `holds`). */
  private on = true;

  constructor(
    private readonly clock: Clock,
    readonly bytesPerSecond: number,
    private readonly burstMs = 100,
  ) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`a rate budget of ${bytesPerSecond} bytes/s`);
    this.nextFree = clock.now();
  }

  /**
   * Whether the budget holds the downloads that start from now on (a run of the update window may
   * be let go at the link's rate). Turning it on starts it afresh.
   */
  holds(on: boolean): void {
    if (on && !this.on) this.nextFree = this.clock.now();
    this.on = on;
  }

  /** Books `bytes` now; the milliseconds the body must wait before it may take more. */
  delay(bytes: number): number {
    if (!this.on) return 0;
    const now = this.clock.now();
    this.nextFree = Math.max(this.nextFree, now - this.burstMs) + (bytes * 1000) / this.bytesPerSecond;
    return Math.max(0, this.nextFree - now);
  }
}

/** Mbit/s (10^6 bits) as bytes per second. */
export const mbitToBytesPerSecond = (mbit: number): number => (mbit * 1_000_000) / 8;
