#!/usr/bin/env node
/**
 * sshd's `AuthorizedPrincipalsCommand` (run as an unprivileged user at each login attempt with a
 * certificate the support CA signed):
 *
 *   node principals-command.js [--account NAME] [--appliance-id ID | --id-file FILE] %u %t %k
 *
 * prints this appliance's principal (`appliance-<id>`) when the certificate may open a support
 * session here (principal.ts: decidePrincipal), nothing otherwise — sshd then refuses. The reason
 * for a refusal goes to stderr, which sshd shows at LogLevel DEBUG. The appliance reads its ID
 * from the data partition; the simulator passes it (its root is not readable by that user).
 * Deliberately small: it starts for every login attempt, so it loads nothing but this and
 * principal.ts.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decidePrincipal } from '@clgw/core/ssh/principal.js';

function main(argv: string[]): number {
  let values: { account?: string; 'appliance-id'?: string; 'id-file'?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        account: { type: 'string' },
        'appliance-id': { type: 'string' },
        'id-file': { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`clgw-ssh-principals: ${(e as Error).message}\n`);
    return 2;
  }
  if (positionals.length !== 3) {
    process.stderr.write(
      'usage: principals-command.js [--account NAME] [--appliance-id ID | --id-file FILE] USER KEYTYPE KEY\n',
    );
    return 2;
  }
  const [user, keyType, key] = positionals as [string, string, string];
  let applianceId = values['appliance-id'];
  if (applianceId === undefined) {
    try {
      applianceId = readFileSync(values['id-file'] ?? '/var/clgw/appliance-id', 'utf8').trim();
    } catch {
      applianceId = undefined;
    }
  }
  const decision = decidePrincipal({
    user,
    account: values.account ?? 'support',
    applianceId,
    keyType,
    blob: Buffer.from(key, 'base64'),
  });
  if (decision.accept) process.stdout.write(`${decision.principal}\n`);
  else process.stderr.write(`clgw-ssh-principals: refused: ${decision.reason}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
