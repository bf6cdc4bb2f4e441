/**
 * Benchmark stage "reading from the mirror": streams one artifact over HTTPS into nothing with the
 * agent's own compiled download client (agent/dist, the code the bundled daemon runs),
 * so TLS and client costs match the agent's. It runs as its own process, like the agent does, so
 * the mirror keeps the bench process's event loop to itself.
 *
 * With WRITE_FILE (an existing slot-sized file) it also writes SIZE bytes into that file at the same
 * time (1 MiB positional writes, O_DIRECT where possible, one final fsync): what the machine gives the two I/O halves of an
 * install at once, without the agent's hashing and checkpoints; `seconds` is then until both end.
 *
 * Usage: node --import tsx scripts/bench/read-mirror.ts URL SIZE CA_FILE [WRITE_FILE]
 * Prints one JSON line: {"bytes": N, "seconds": S}.
 */
import { promises as fs } from 'node:fs';
import { systemClock } from '@clgw/core/platform/clock.js';
import { createHttpClient } from '@clgw/core/platform/http.js';
import { alignedBuffers, openDirect } from '@clgw/core/slot/direct-io.js';

async function main(argv: string[]): Promise<void> {
  const [url, sizeText, caFile, writeFile] = argv;
  const size = Number(sizeText);
  if (!url || !caFile || !Number.isSafeInteger(size) || size <= 0) {
    process.stderr.write('usage: read-mirror.ts URL SIZE CA_FILE\n');
    process.exit(2);
  }
  const ca = await fs.readFile(caFile, 'utf8');
  // No proxy: the mirror is on loopback, which the agent never proxies either.
  const http = createHttpClient({ clock: systemClock, ca, proxy: null });
  const started = process.hrtime.bigint();
  const read = async () => {
    const { stream } = await http.openStream(url, { expectedSize: size });
    let n = 0;
    for await (const chunk of stream) n += (chunk as Buffer).length;
    return n;
  };
  const [bytes] = await Promise.all([read(), writeFile ? writeInto(writeFile, size) : undefined]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (bytes !== size) throw new Error(`${url}: received ${bytes} bytes, expected ${size}`);
  process.stdout.write(`${JSON.stringify({ bytes, seconds })}\n`);
}

/** `size` bytes in 1 MiB positional writes into an existing file (O_DIRECT, as the agent), then one fsync. */
async function writeInto(file: string, size: number): Promise<void> {
  const [buf] = alignedBuffers(1, 1024 * 1024) as [Buffer];
  buf.fill(0xa5);
  const h = (await openDirect(file)) ?? (await fs.open(file, 'r+'));
  try {
    for (let off = 0; off < size; ) {
      const { bytesWritten } = await h.write(buf, 0, Math.min(buf.length, size - off), off);
      off += bytesWritten;
    }
    await h.sync();
  } finally {
    await h.close();
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`read-mirror: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
