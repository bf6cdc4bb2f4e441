import { timingSafeEqual } from 'node:crypto';

/**
 * Whether two strings are the same, in time that does not depend on where they differ: the
 * presence code's comparison (`PresenceOptions.equal` in presence.ts). `timingSafeEqual` throws on buffers
 * of different byte lengths, and strings of the same length in characters need not be (`É` is two
 * bytes in UTF-8): the byte lengths are compared first, and a difference there is simply `false`.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
