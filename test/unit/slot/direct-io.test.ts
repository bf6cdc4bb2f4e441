import { wholeChunks } from '@clgw/core/slot/direct-io.js';
import { describe, expect, it } from 'vitest';

describe('wholeChunks', () => {
  const buffer = Buffer.alloc(1024 * 1024);

  it('keeps the start of the buffer that holds whole chunks, in the same memory', () => {
    const four = wholeChunks(buffer, 4096);
    expect(four.length).toBe(1024 * 1024);
    expect(four.buffer).toBe(buffer.buffer);
    const odd = wholeChunks(buffer, 3000);
    expect(odd.length).toBe(349 * 3000);
    expect(odd.byteOffset).toBe(buffer.byteOffset);
  });

  it('gives a chunk larger than the buffer one of its own', () => {
    const big = wholeChunks(buffer, 2 * 1024 * 1024);
    expect(big.length).toBe(2 * 1024 * 1024);
    expect(big.buffer).not.toBe(buffer.buffer);
  });
});
