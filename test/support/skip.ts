import { appendFileSync } from 'node:fs';

/**
 * Records why a test is skipped, so `make test` can print the reason above its summary line.
 * Use only where a capability truly cannot exist on the machine.
 */
export function recordSkip(test: string, reason: string): void {
  const log = process.env.CLGW_SKIP_LOG;
  const line = `  ${test}: ${reason}\n`;
  if (log) appendFileSync(log, line);
  else process.stderr.write(`skipped ${line}`);
}
