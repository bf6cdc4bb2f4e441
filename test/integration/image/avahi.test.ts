/**
 * The mDNS configuration (image/avahi/): the portal's service file is valid against avahi's own
 * DTD, advertises _http._tcp on port 80, and the daemon is told to be cloudlink.local.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const DTD = '/usr/share/avahi/avahi-service.dtd';
const skip = await Promise.all([fs.access('/usr/bin/xmllint'), fs.access(DTD)]).then(
  () => undefined,
  () => 'xmllint or avahi-service.dtd missing (scripts/setup installs libxml2-utils and avahi-daemon)',
);
if (skip) recordSkip('test/integration/image/avahi.test.ts', skip);

describe.skipIf(skip)('mDNS configuration', () => {
  it('the portal service file is valid against avahi-service.dtd', async () => {
    const file = path.join(REPO, 'image/avahi/services/clgw-portal.service');
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(
        'xmllint',
        ['--noout', '--path', path.dirname(DTD), '--valid', file],
        (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
      ),
    );
    expect(result).toEqual({ code: 0, output: '' });
    const text = await fs.readFile(file, 'utf8');
    expect(text).toContain('<type>_http._tcp</type>');
    expect(text).toContain('<port>80</port>');
  });

  it('the daemon advertises cloudlink.local', async () => {
    const conf = await fs.readFile(path.join(REPO, 'image/avahi/avahi-daemon.conf'), 'utf8');
    expect(conf).toMatch(/^host-name=cloudlink$/m);
    expect(conf).toMatch(/^domain-name=local$/m);
  });
});
