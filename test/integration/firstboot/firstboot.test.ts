/**
 * The built `clgw-firstboot` against a fresh appliance root: the OVF environment from an ISO
 * (made by xorriso, as the end-to-end run attaches it), a document file, or VMware guestinfo (a
 * stand-in `vmtoolsd` on PATH). Applied once and saved exactly as the agent saves a change;
 * invalid values fall back to DHCP with the reasons recorded; no environment keeps DHCP.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FirstBootRecord } from '../../../agent/src/firstboot/run.js';
import { readNetwork } from '../../../agent/src/network/network.js';
import { writeJsonAtomic } from '../../../agent/src/platform/atomic.js';
import { type AppliancePaths, appliancePaths } from '../../../agent/src/platform/paths.js';
import { REPO, tempDir } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const CLI = path.join(REPO, 'agent/dist/cli/firstboot.js');
const NS = 'http://schemas.dmtf.org/ovf/environment/1';
const skip = await promisify(execFile)('xorriso', ['-version']).then(
  () => undefined,
  () => 'xorriso is not installed (Debian package xorriso; scripts/setup image-tests)',
);
if (skip) recordSkip('test/integration/firstboot/firstboot.test.ts', skip);

let scratch: string;

function environment(props: Record<string, string>): string {
  const lines = Object.entries(props).map(([k, v]) => `    <Property oe:key="${k}" oe:value="${v}"/>`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="${NS}" xmlns:oe="${NS}" xmlns:ve="http://www.vmware.com/schema/ovfenv" oe:id="">
  <PlatformSection><Kind>VMware ESXi</Kind><Version>8.0.2</Version><Vendor>VMware, Inc.</Vendor><Locale>en</Locale></PlatformSection>
  <PropertySection>
${lines.join('\n')}
  </PropertySection>
  <ve:EthernetAdapterSection><ve:Adapter ve:mac="00:50:56:a1:b2:c3" ve:network="LAN" ve:unitNumber="7"/></ve:EthernetAdapterSection>
</Environment>
`;
}

let isoCount = 0;
/** An ISO 9660 image holding `files` (Joliet + Rock Ridge, as `genisoimage -J -R` would make it). */
async function iso(files: Record<string, string>): Promise<string> {
  const src = path.join(scratch, `iso-${++isoCount}`);
  await fs.mkdir(src);
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(src, name), content);
  const out = `${src}.iso`;
  await promisify(execFile)('xorriso', ['-as', 'mkisofs', '-J', '-R', '-o', out, src]);
  return out;
}

/** A factory-fresh appliance root: the agent's configuration and nothing on the data partition. */
async function appliance(): Promise<AppliancePaths> {
  const paths = appliancePaths(await fs.mkdtemp(path.join(scratch, 'root-')));
  await writeJsonAtomic(paths.config, { platform: 'virtual', networkApply: 'none' });
  return paths;
}

function firstboot(
  paths: AppliancePaths,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, CLGW_ROOT: paths.root, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

async function record(paths: AppliancePaths): Promise<FirstBootRecord> {
  return JSON.parse(await fs.readFile(paths.firstBoot, 'utf8')) as FirstBootRecord;
}

async function networkFiles(paths: AppliancePaths): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await fs.readdir(paths.networkDir).catch(() => []))
    out[name] = await fs.readFile(path.join(paths.networkDir, name), 'utf8');
  return out;
}

const STATIC = {
  'cl.hostname': 'gw-hq',
  'cl.ip0': '10.0.2.15',
  'cl.netmask0': '24',
  'cl.gateway0': '10.0.2.2',
  'cl.dns0': '10.0.2.3',
};

beforeAll(async () => {
  await fs.access(CLI); // built by `make test`
  scratch = await tempDir('firstboot');
});

afterAll(async () => {
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

describe.skipIf(skip)('clgw-firstboot', () => {
  it('applies a static address from the ISO once; the second run does nothing', async () => {
    const paths = await appliance();
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    const first = await firstboot(paths, ['--iso', image]);
    expect(first.code).toBe(0);

    const settings = {
      hostname: 'gw-hq',
      ipv4: {
        mode: 'static',
        address: '10.0.2.15',
        prefixLength: 24,
        gateway: '10.0.2.2',
        dns: ['10.0.2.3'],
      },
    };
    const rec = await record(paths);
    expect(rec).toEqual({
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      transport: 'iso',
      source: `${image}: ovf-env.xml`,
      platform: { kind: 'VMware ESXi', version: '8.0.2', vendor: 'VMware, Inc.', locale: 'en' },
      properties: {
        hostname: 'gw-hq',
        ip0: '10.0.2.15',
        netmask0: '24',
        gateway0: '10.0.2.2',
        dns0: '10.0.2.3',
      },
      network: settings,
      reasons: [],
    });
    // Saved as the agent saves a technician's change: the agent reads it back as saved settings.
    expect(await readNetwork(paths)).toMatchObject({ source: 'saved', settings });
    const files = await networkFiles(paths);
    expect(Object.keys(files).sort()).toEqual(['10-clgw.network', 'hostname', 'settings.json']);
    expect(files['10-clgw.network']).toContain(
      '\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n',
    );
    expect(files.hostname).toBe('gw-hq\n');
    expect(first.stderr).toContain(
      'first boot: static 10.0.2.15/24 via 10.0.2.2, DNS 10.0.2.3, hostname gw-hq',
    );

    // Another environment later (a re-attached CD) changes nothing: first boot is done.
    const other = await iso({ 'ovf-env.xml': environment({ 'cl.ip0': '' }) });
    const recordBefore = await fs.readFile(paths.firstBoot, 'utf8');
    const second = await firstboot(paths, ['--iso', other]);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe(`clgw-firstboot: first boot already done (${paths.firstBoot})\n`);
    expect(await fs.readFile(paths.firstBoot, 'utf8')).toBe(recordBefore);
    expect(await networkFiles(paths)).toEqual(files);
  });

  it('invalid values: DHCP with the default hostname, one reason per value, on stderr too', async () => {
    const paths = await appliance();
    const image = await iso({
      'ovf-env.xml': environment({
        ...STATIC,
        'cl.hostname': 'gw_hq',
        'cl.ip0': '10.0.2.300',
        'cl.dns0': 'x',
      }),
    });
    const r = await firstboot(paths, ['--iso', image]);
    expect(r.code).toBe(0);
    const reasons = [
      'cl.hostname: \'gw_hq\': label "gw_hq" may only hold letters, digits and hyphens; keeping the hostname cloudlink-gateway',
      "cl.ip0: '10.0.2.300' is not an IPv4 address; falling back to DHCP",
      "cl.dns0: 'x' is not an IPv4 address; falling back to DHCP",
    ];
    expect(await record(paths)).toMatchObject({
      transport: 'iso',
      network: { hostname: 'cloudlink-gateway', ipv4: { mode: 'dhcp' } },
      reasons,
    });
    for (const reason of reasons) expect(r.stderr).toContain(`clgw-firstboot: ${reason}\n`);
    expect(await readNetwork(paths)).toMatchObject({ source: 'saved', summary: 'DHCP' });
    expect((await networkFiles(paths))['10-clgw.network']).toContain('\nDHCP=ipv4\n');
    // The log file has them too (the log download carries it).
    expect(await fs.readFile(paths.logFile, 'utf8')).toContain('is not an IPv4 address');
  });

  it('blank cl.ip0: DHCP with the given hostname', async () => {
    const paths = await appliance();
    const r = await firstboot(paths, [
      '--iso',
      await iso({ 'OVF-ENV.XML': environment({ 'cl.hostname': 'edge', 'cl.ip0': '' }) }),
    ]);
    expect(r.code).toBe(0);
    expect(await record(paths)).toMatchObject({
      network: { hostname: 'edge', ipv4: { mode: 'dhcp' } },
      reasons: [],
    });
  });

  it('no environment (a CD without ovf-env.xml): "none", DHCP, nothing saved', async () => {
    const paths = await appliance();
    const r = await firstboot(paths, ['--iso', await iso({ 'README.txt': 'drivers\n' })]);
    expect(r.code).toBe(0);
    expect(await record(paths)).toEqual({ at: expect.any(String), transport: 'none', reasons: [] });
    expect(await networkFiles(paths)).toEqual({});
    expect(await readNetwork(paths)).toMatchObject({ source: 'default', summary: 'DHCP' });
    expect(r.stderr).toContain('no OVF environment found: keeping the factory default (DHCP)');
  });

  it('a malformed document: recorded with the reason, nothing saved', async () => {
    const paths = await appliance();
    const image = await iso({ 'ovf-env.xml': environment(STATIC).replace('</Environment>', '') });
    expect((await firstboot(paths, ['--iso', image])).code).toBe(0);
    const rec = await record(paths);
    expect(rec).toMatchObject({ transport: 'iso', source: `${image}: ovf-env.xml` });
    expect(rec.network).toBeUndefined();
    expect(rec.reasons).toHaveLength(1);
    expect(rec.reasons[0]).toMatch(
      /: OVF environment: not well-formed XML: .*; keeping the factory default \(DHCP\)$/,
    );
    expect(await networkFiles(paths)).toEqual({});
  });

  it('an ovf-env.xml over the size cap: recorded with the reason, nothing read or saved', async () => {
    const paths = await appliance();
    const image = await iso({ 'ovf-env.xml': environment(STATIC) + ' '.repeat(300 * 1024) });
    expect((await firstboot(paths, ['--iso', image])).code).toBe(0);
    const size = environment(STATIC).length + 300 * 1024;
    expect(await record(paths)).toEqual({
      at: expect.any(String),
      transport: 'iso',
      source: image,
      reasons: [
        `${image}: ovf-env.xml is ${size} bytes (at most 262144); keeping the factory default (DHCP)`,
      ],
    });
    expect(await networkFiles(paths)).toEqual({});
  });

  it('--env-file: a document as a file; a Property outside the namespace is a reason', async () => {
    const paths = await appliance();
    const file = path.join(scratch, 'ovf-env.xml');
    await fs.writeFile(
      file,
      environment(STATIC).replace(
        '</PropertySection>',
        '<Property key="cl.ip0" value="10.0.2.99"/></PropertySection>',
      ),
    );
    expect((await firstboot(paths, ['--env-file', file])).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      transport: 'file',
      source: file,
      network: { hostname: 'gw-hq', ipv4: { address: '10.0.2.15' } },
      reasons: [`${file}: Property without a key in the OVF environment namespace (line 10)`],
    });
  });

  it('VMware guestinfo through vmtoolsd (a stand-in on PATH), asked with an argument vector', async () => {
    const paths = await appliance();
    const bin = await fs.mkdtemp(path.join(scratch, 'bin-'));
    const doc = path.join(bin, 'env.xml');
    await fs.writeFile(doc, environment({ ...STATIC, 'cl.ip0': '10.0.2.16' }));
    // Answers only the exact call (`--cmd` and one argument), like the real one.
    await fs.writeFile(
      path.join(bin, 'vmtoolsd'),
      `#!/bin/sh\n[ "$#" = 2 ] && [ "$1" = --cmd ] && [ "$2" = "info-get guestinfo.ovfEnv" ] && exec cat '${doc}'\necho "bad call: $*" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const r = await firstboot(paths, [], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.code).toBe(0);
    expect(await record(paths)).toMatchObject({
      transport: 'guestinfo',
      source: 'guestinfo.ovfEnv',
      network: { ipv4: { address: '10.0.2.16' } },
    });
  });

  it('vmtoolsd without the key (or off VMware): a reason, then the CD-ROM drives', async () => {
    const paths = await appliance();
    const bin = await fs.mkdtemp(path.join(scratch, 'bin-'));
    await fs.writeFile(path.join(bin, 'vmtoolsd'), '#!/bin/sh\necho "No value found" >&2\nexit 1\n', {
      mode: 0o755,
    });
    const r = await firstboot(paths, [], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.code).toBe(0);
    const rec = await record(paths);
    // Whatever the drives of this machine hold, guestinfo was tried first and said why not.
    expect(rec.reasons[0]).toMatch(
      /^guestinfo\.ovfEnv not read: .*vmtoolsd --cmd info-get guestinfo\.ovfEnv: .*No value found$/,
    );
  });

  it('usage errors exit 2; an unreadable source exits 1 and records nothing (the next boot retries)', async () => {
    const paths = await appliance();
    const usage = await firstboot(paths, ['--iso']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: clgw-firstboot [--iso FILE | --env-file FILE]');
    const missing = await firstboot(paths, ['--iso', path.join(scratch, 'nope.iso')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.iso/);
    const notIso = path.join(scratch, 'not.iso');
    await fs.writeFile(notIso, Buffer.alloc(64 * 1024));
    const bad = await firstboot(paths, ['--iso', notIso]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `clgw-firstboot: ISO_INVALID: ${notIso}: no ISO 9660 volume descriptor at sector 16`,
    );
    await expect(fs.access(paths.firstBoot)).rejects.toThrow();
  });
});
