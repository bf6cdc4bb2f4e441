/**
 * A sliding-window limit per client (the portal's POSTs: a few per minute per IP address).
 * Memory is bounded: at most `maxClients` clients are tracked; when full, the client whose
 * newest request is oldest is forgotten. Pure: time is passed in.
 */
export interface RateLimiter {
  /** Counts one request of `client` at `now`, or refuses it with the time until one is allowed. */
  take(client: string, now: number): { ok: true } | { ok: false; retryAfterMs: number };
}

export function createRateLimiter(opts: { max: number; windowMs: number; maxClients?: number }): RateLimiter {
  const maxClients = opts.maxClients ?? 1024;
  const hits = new Map<string, number[]>();

  const prune = (list: number[], now: number) => {
    while (list.length > 0 && list[0]! <= now - opts.windowMs) list.shift();
  };

  return {
    take(client, now) {
      let list = hits.get(client);
      if (list) {
        hits.delete(client); // re-inserted below: the map's order is least recently seen first
      } else {
        list = [];
        if (hits.size >= maxClients) {
          for (const [key, l] of hits) {
            prune(l, now);
            if (l.length === 0) hits.delete(key);
          }
          if (hits.size >= maxClients) hits.delete(hits.keys().next().value!);
        }
      }
      prune(list, now);
      hits.set(client, list);
      if (list.length >= opts.max) {
        // Refused attempts are not recorded: the window frees up as the accepted ones age.
        return { ok: false, retryAfterMs: Math.max(1, list[0]! + opts.windowMs - now) };
      }
      list.push(now);
      return { ok: true };
    },
  };
}
