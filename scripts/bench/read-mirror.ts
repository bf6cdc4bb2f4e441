/**
 * Benchmark stage "reading from the mirror": streams one artifact over HTTPS into nothing with the
 * agent's own compiled download client (agent/dist, exactly what `node agent/dist/main.js` runs),
 * so TLS and client costs match the agent's. It runs as its own process, like the agent does, so
 * the mirror keeps the bench process's event loop to itself.
 *
 * Usage: node --import tsx scripts/bench/read-mirror.ts URL SIZE CA_FILE
 * Prints one JSON line: {"bytes": N, "seconds": S}.
 */
import { promises as fs } from 'node:fs';
import { systemClock } from '@clgw/agent/platform/clock.js';
import { createHttpClient } from '@clgw/agent/platform/http.js';

async function main(argv: string[]): Promise<void> {
  const [url, sizeText, caFile] = argv;
  const size = Number(sizeText);
  if (!url || !caFile || !Number.isSafeInteger(size) || size <= 0) {
    process.stderr.write('usage: read-mirror.ts URL SIZE CA_FILE\n');
    process.exit(2);
  }
  const ca = await fs.readFile(caFile, 'utf8');
  // No proxy: the mirror is on loopback, which the agent never proxies either.
  const http = createHttpClient({ clock: systemClock, ca, proxy: null });
  const started = process.hrtime.bigint();
  const { stream } = await http.openStream(url, { expectedSize: size });
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (bytes !== size) throw new Error(`${url}: received ${bytes} bytes, expected ${size}`);
  process.stdout.write(`${JSON.stringify({ bytes, seconds })}\n`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`read-mirror: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
