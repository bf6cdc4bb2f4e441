/**
 * One shared answer for every client within a short interval: a status is built at most once per
 * `maxAgeMs` however many ask, and callers that arrive while it is being built wait for that same
 * build. A flood of requests then costs the same as one client polling (the agent and the portal
 * alike). A failed build is not kept: the next caller builds again. Pure: no `node:*` imports.
 */
export interface SharedSnapshot<T> {
  get(): Promise<T>;
  /** The next `get()` builds anew (after a change the caller knows of). */
  invalidate(): void;
}

export function sharedSnapshot<T>(
  build: () => Promise<T>,
  opts: { maxAgeMs: number; now: () => number },
): SharedSnapshot<T> {
  let entry: { promise: Promise<T>; doneAt: number | undefined } | undefined;
  return {
    get() {
      const now = opts.now();
      // A build under way is always shared, however long it takes: waiting callers never pile up builds.
      if (entry && (entry.doneAt === undefined || now - entry.doneAt < opts.maxAgeMs)) return entry.promise;
      const mine: { promise: Promise<T>; doneAt: number | undefined } = {
        promise: build(),
        doneAt: undefined,
      };
      entry = mine;
      mine.promise.then(
        () => {
          mine.doneAt = opts.now();
        },
        () => {
          if (entry === mine) entry = undefined;
        },
      );
      return mine.promise;
    },
    invalidate() {
      entry = undefined;
    },
  };
}
