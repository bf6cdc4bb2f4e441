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

  constructor(
    private readonly clock: Clock,
    readonly bytesPerSecond: number,
    private readonly burstMs = 100,
  ) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`a rate budget of ${bytesPerSecond} bytes/s`);
    this.nextFree = clock.now();
  }

  /** Books `bytes` now; the milliseconds the body must wait before it may take more. */
  delay(bytes: number): number {
    const now = this.clock.now();
    this.nextFree = Math.max(this.nextFree, now - this.burstMs) + (bytes * 1000) / this.bytesPerSecond;
    return Math.max(0, this.nextFree - now);
  }
}

/** Mbit/s (10^6 bits) as bytes per second. */
export const mbitToBytesPerSecond = (mbit: number): number => (mbit * 1_000_000) / 8;
