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
import type { FirstBootRecord } from '@clgw/core/firstboot/report.js';
import { formatTime } from '@clgw/core/format.js';
import { readNetwork } from '@clgw/core/network/network.js';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, tempDir } from '../../support/appliance.js';
import { runClgw } from '../../support/cli.js';
import { mkisofs } from '../../support/iso.js';
import { PLANS } from '../../support/ovf-cases.js';
import { recordSkip } from '../../support/skip.js';

const CLI = path.join(REPO, 'firstboot/dist/main.js');
const NS = 'http://schemas.dmtf.org/ovf/environment/1';
const skip = await promisify(execFile)('xorriso', ['-version']).then(
  () => undefined,
  () => 'xorriso is not installed (Debian package xorriso; scripts/setup image-tests)',
);
if (skip) recordSkip('test/integration/firstboot/firstboot.test.ts', skip);

let scratch: string;

/** An attribute value as XML keeps it exactly: a line break survives as a character reference. */
const attr = (v: string) => v.replace(/[&<>"\n\r\t]/g, (c) => `&#${c.charCodeAt(0)};`);

function environment(props: Record<string, string>): string {
  const lines = Object.entries(props).map(
    ([k, v]) => `    <Property oe:key="${attr(k)}" oe:value="${attr(v)}"/>`,
  );
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

/** `PATH` with `bin` first (a stand-in `vmtoolsd`). */
const withPath = (bin: string): NodeJS.ProcessEnv => ({ PATH: `${bin}:${process.env.PATH}` });

/**
 * A stand-in `vmtoolsd` in a directory of its own: it answers only the exact call the real one
 * is given (`--cmd` and one argument) with `env.xml` from its directory, fails with `fail` (as
 * VMware does for a key it does not have), fails `failFirst` times first (the tools' channel not
 * up yet), or hangs. Every call is counted in `calls`.
 */
async function vmtoolsd(o: { document?: boolean; fail?: string; failFirst?: number; hang?: boolean }) {
  const bin = await fs.mkdtemp(path.join(scratch, 'bin-'));
  const lines = [
    '#!/bin/sh',
    `dir='${bin}'`,
    'echo x >> "$dir/calls"',
    '[ "$#" = 2 ] && [ "$1" = --cmd ] && [ "$2" = "info-get guestinfo.ovfEnv" ] || { echo "bad call: $*" >&2; exit 1; }',
  ];
  if (o.hang) lines.push('exec sleep 600');
  if (o.fail) lines.push(`echo '${o.fail}' >&2`, 'exit 1');
  if (o.failFirst)
    lines.push(
      `[ "$(wc -l < "$dir/calls")" -le ${o.failFirst} ] && { echo "RPC channel not ready" >&2; exit 1; }`,
    );
  if (o.document) lines.push('exec cat "$dir/env.xml"');
  await fs.writeFile(path.join(bin, 'vmtoolsd'), `${lines.join('\n')}\n`, { mode: 0o755 });
  return bin;
}

/** How many times the stand-in was called. */
async function calls(bin: string): Promise<number> {
  const text = await fs.readFile(path.join(bin, 'calls'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).length;
}

let isoCount = 0;
/** An ISO 9660 image holding `files` (Joliet + Rock Ridge, as `genisoimage -J -R` would make it). */
async function iso(files: Record<string, string>): Promise<string> {
  const src = path.join(scratch, `iso-${++isoCount}`);
  await fs.mkdir(src);
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(src, name), content);
  const out = `${src}.iso`;
  await mkisofs(['-J', '-R', '-o', out, src]);
  return out;
}

/**
 * A factory-fresh appliance root: the agent's configuration and nothing on the data partition.
 * The KVM image unless said otherwise: only VMware's asks guestinfo.
 */
async function appliance(platform: 'kvm' | 'virtual' = 'kvm'): Promise<AppliancePaths> {
  const paths = appliancePaths(await fs.mkdtemp(path.join(scratch, 'root-')));
  await writeJsonAtomic(paths.config, { platform, networkApply: 'none' });
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
    const first = await firstboot(paths, ['--cdrom', image]);
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
      outcome: 'applied',
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
    const second = await firstboot(paths, ['--cdrom', other]);
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
    const r = await firstboot(paths, ['--cdrom', image]);
    expect(r.code).toBe(0);
    const reasons = [
      'cl.hostname: \'gw_hq\': label "gw_hq" may only hold letters, digits and hyphens; keeping the hostname cloudlink-gateway',
      "cl.ip0: '10.0.2.300' is not an IPv4 address; falling back to DHCP",
      "cl.dns0: 'x' is not an IPv4 address; falling back to DHCP",
    ];
    expect(await record(paths)).toMatchObject({
      outcome: 'refused',
      transport: 'iso',
      network: { hostname: 'cloudlink-gateway', ipv4: { mode: 'dhcp' } },
      reasons,
    });
    for (const reason of reasons) expect(r.stderr).toContain(`clgw-firstboot: ${reason}\n`);
    expect(await readNetwork(paths)).toMatchObject({ source: 'saved', summary: 'DHCP' });
    expect((await networkFiles(paths))['10-clgw.network']).toContain('\nDHCP=ipv4\n');
    // The log file has them too (the log download carries it).
    expect(await fs.readFile(paths.logFile, 'utf8')).toContain('is not an IPv4 address');
    // And `clgw status` (the agent down: read from disk) says it: the summary, when and where
    // from, the values, then each reason whole — all within 80 columns (long lines wrapped).
    const status = await runClgw(paths.root, ['status']);
    expect(status.code).toBe(0);
    for (const line of status.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    const words = (lines: string[]) => lines.join(' ').replace(/\s+/g, ' ').trim();
    const section = status.stdout.slice(status.stdout.indexOf('first boot:'));
    expect(words([section])).toContain(
      words([
        'first boot:   Deployed settings refused: cl.hostname, cl.ip0, cl.dns0; using DHCP',
        `              ${formatTime((await record(paths)).at)}, from ${image}: ovf-env.xml`,
        '              cl.hostname=gw_hq cl.ip0=10.0.2.300 cl.netmask0=24',
        '              cl.gateway0=10.0.2.2 cl.dns0=x',
        ...reasons.map((r) => `              - ${r}`),
      ]),
    );
  });

  it('blank cl.ip0: DHCP with the given hostname', async () => {
    const paths = await appliance();
    const r = await firstboot(paths, [
      '--cdrom',
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
    const r = await firstboot(paths, ['--cdrom', await iso({ 'README.txt': 'drivers\n' })]);
    expect(r.code).toBe(0);
    expect(await record(paths)).toEqual({
      at: expect.any(String),
      outcome: 'none',
      transport: 'none',
      reasons: [],
    });
    expect(await networkFiles(paths)).toEqual({});
    expect(await readNetwork(paths)).toMatchObject({ source: 'default', summary: 'DHCP' });
    expect(r.stderr).toContain('no OVF environment found: keeping the factory default (DHCP)');
  });

  it('a malformed document: recorded with the reason, nothing saved', async () => {
    const paths = await appliance();
    const image = await iso({ 'ovf-env.xml': environment(STATIC).replace('</Environment>', '') });
    expect((await firstboot(paths, ['--cdrom', image])).code).toBe(0);
    const rec = await record(paths);
    expect(rec).toMatchObject({ outcome: 'refused', transport: 'iso', source: `${image}: ovf-env.xml` });
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
    expect((await firstboot(paths, ['--cdrom', image])).code).toBe(0);
    const size = environment(STATIC).length + 300 * 1024;
    expect(await record(paths)).toEqual({
      at: expect.any(String),
      outcome: 'refused',
      transport: 'iso',
      source: image,
      reasons: [
        `${image}: ovf-env.xml is ${size} bytes (at most 262144); keeping the factory default (DHCP)`,
      ],
    });
    expect(await networkFiles(paths)).toEqual({});
  });

  it('--document: a document as a file; a Property outside the namespace is a reason', async () => {
    const paths = await appliance();
    const file = path.join(scratch, 'ovf-env.xml');
    await fs.writeFile(
      file,
      environment(STATIC).replace(
        '</PropertySection>',
        '<Property key="cl.ip0" value="10.0.2.99"/></PropertySection>',
      ),
    );
    expect((await firstboot(paths, ['--document', file])).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      transport: 'file',
      source: file,
      network: { hostname: 'gw-hq', ipv4: { address: '10.0.2.15' } },
      reasons: [`${file}: Property without a key in the OVF environment namespace (line 10)`],
    });
  });

  it('the OVF environment of each case of the plan table, through VMware guestinfo', async () => {
    const bin = await vmtoolsd({ document: true });
    for (const [name, cl, settings, reasons] of PLANS) {
      const paths = await appliance('virtual');
      await fs.writeFile(
        path.join(bin, 'env.xml'),
        environment(Object.fromEntries(Object.entries(cl).map(([k, v]) => [`cl.${k}`, v]))),
      );
      const r = await firstboot(paths, ['--cdrom', path.join(scratch, 'no-drive')], withPath(bin));
      expect(r.code, name).toBe(0);
      const rec = await record(paths);
      expect(rec, name).toMatchObject({
        transport: 'guestinfo',
        source: 'guestinfo.ovfEnv',
        network: settings,
      });
      expect(rec.reasons, name).toEqual(reasons);
      // Each reason is one line of the journal, whatever the value held.
      for (const reason of reasons) expect(r.stderr, name).toContain(`clgw-firstboot: ${reason}\n`);
    }
  });

  it('guestinfo and a CD-ROM that agree: guestinfo is used, nothing to say', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ document: true });
    await fs.writeFile(path.join(bin, 'env.xml'), environment(STATIC));
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    expect((await firstboot(paths, ['--cdrom', image], withPath(bin))).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      outcome: 'applied',
      transport: 'guestinfo',
      source: 'guestinfo.ovfEnv',
      reasons: [],
    });
  });

  it('guestinfo and a CD-ROM that disagree: guestinfo wins, and the keys are named', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ document: true });
    await fs.writeFile(path.join(bin, 'env.xml'), environment({ ...STATIC, 'cl.ip0': '10.0.2.16' }));
    const image = await iso({ 'ovf-env.xml': environment({ ...STATIC, 'cl.hostname': 'gw-old' }) });
    expect((await firstboot(paths, ['--cdrom', image], withPath(bin))).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      outcome: 'applied',
      transport: 'guestinfo',
      network: { hostname: 'gw-hq', ipv4: { address: '10.0.2.16' } },
      reasons: [
        `guestinfo.ovfEnv and ${image}: ovf-env.xml disagree on cl.hostname, cl.ip0: using guestinfo.ovfEnv`,
      ],
    });
  });

  it('an unusable guestinfo document and a good CD-ROM: the CD-ROM, and why not guestinfo', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ document: true });
    await fs.writeFile(path.join(bin, 'env.xml'), '<Environment');
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    expect((await firstboot(paths, ['--cdrom', image], withPath(bin))).code).toBe(0);
    const rec = await record(paths);
    expect(rec).toMatchObject({ outcome: 'applied', transport: 'iso', source: `${image}: ovf-env.xml` });
    expect(rec.reasons).toEqual([
      expect.stringMatching(/^guestinfo\.ovfEnv: OVF environment: not well-formed XML: /),
    ]);
  });

  it('tools present but the key absent: asked once, then the CD-ROM', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ fail: 'No value found' });
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    expect((await firstboot(paths, ['--cdrom', image], withPath(bin))).code).toBe(0);
    const rec = await record(paths);
    expect(rec).toMatchObject({ outcome: 'applied', transport: 'iso' });
    expect(rec.reasons).toEqual([
      expect.stringMatching(
        /^guestinfo\.ovfEnv is not set \(deployed without the OVF environment\): .*vmtoolsd --cmd info-get guestinfo\.ovfEnv: .*No value found$/,
      ),
    ]);
    expect(await calls(bin)).toBe(1);
  });

  it('tools that do not answer yet: asked again until they do', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ document: true, failFirst: 2 });
    await fs.writeFile(path.join(bin, 'env.xml'), environment(STATIC));
    expect((await firstboot(paths, ['--cdrom', path.join(scratch, 'no-drive')], withPath(bin))).code).toBe(0);
    expect(await record(paths)).toMatchObject({ outcome: 'applied', transport: 'guestinfo', reasons: [] });
    expect(await calls(bin)).toBe(3);
  });

  it('tools that hang: given up after --guestinfo-wait, one line saying so, then the CD-ROM', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ hang: true });
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    const started = Date.now();
    const r = await firstboot(paths, ['--guestinfo-wait', '2', '--cdrom', image], withPath(bin));
    expect(r.code).toBe(0);
    // Bounded: well under the 10 s one call may take, let alone the default 30 s wait.
    expect(Date.now() - started).toBeLessThan(8_000);
    const rec = await record(paths);
    expect(rec).toMatchObject({ outcome: 'applied', transport: 'iso' });
    expect(rec.reasons).toEqual([
      expect.stringMatching(/^guestinfo\.ovfEnv not read \(1 try in 2 s\): .*timed out after 2000 ms$/),
    ]);
  });

  it('tools missing on the VMware image: said, then the CD-ROM; the KVM image does not ask', async () => {
    const vmwarePaths = await appliance('virtual');
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    const empty = await fs.mkdtemp(path.join(scratch, 'bin-'));
    const noTools = { PATH: `${empty}:/usr/bin:/bin` };
    expect((await firstboot(vmwarePaths, ['--cdrom', image], noTools)).code).toBe(0);
    expect(await record(vmwarePaths)).toMatchObject({
      outcome: 'applied',
      transport: 'iso',
      reasons: ['guestinfo.ovfEnv not read: VMware Tools (vmtoolsd) is not installed'],
    });

    const kvmPaths = await appliance('kvm');
    const bin = await vmtoolsd({ document: true });
    await fs.writeFile(path.join(bin, 'env.xml'), environment({ ...STATIC, 'cl.ip0': '10.0.2.16' }));
    const r = await firstboot(kvmPaths, ['--cdrom', image], withPath(bin));
    expect(await record(kvmPaths)).toMatchObject({ transport: 'iso', reasons: [] });
    expect(await calls(bin)).toBe(0);
    expect(r.stderr).toContain("guestinfo not asked: this is the kvm image, not VMware's");
  });

  it('no environment anywhere on the VMware image: "none", with why guestinfo gave nothing', async () => {
    const paths = await appliance('virtual');
    const bin = await vmtoolsd({ fail: 'No value found' });
    expect((await firstboot(paths, ['--cdrom', path.join(scratch, 'no-drive')], withPath(bin))).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      outcome: 'none',
      transport: 'none',
      reasons: [expect.stringMatching(/^guestinfo\.ovfEnv is not set /)],
    });
    expect(await networkFiles(paths)).toEqual({});
  });

  it('usage errors exit 2 (ours, not Node’s); an unreadable document exits 1 and records nothing', async () => {
    const paths = await appliance();
    for (const args of [
      // (`--env-file` is no option of ours: Node 20 takes it wherever it stands, and exits 9.)
      ['--cdrom'],
      ['--document', 'x.xml', '--cdrom', 'y.iso'],
      ['--guestinfo-wait', '1e3'],
      ['extra'],
    ]) {
      const usage = await firstboot(paths, args);
      expect(usage.code, args.join(' ')).toBe(2);
      expect(usage.stderr, args.join(' ')).toContain('usage: clgw-firstboot [--cdrom FILE]...');
    }
    const missing = await firstboot(paths, ['--document', path.join(scratch, 'nope.xml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.xml/);
    await expect(fs.access(paths.firstBoot)).rejects.toThrow();
  });

  it('a drive that is not ISO 9660 is a reason, not a failure: the next drive is read', async () => {
    const paths = await appliance();
    const notIso = path.join(scratch, 'not.iso');
    await fs.writeFile(notIso, Buffer.alloc(64 * 1024));
    const image = await iso({ 'ovf-env.xml': environment(STATIC) });
    expect((await firstboot(paths, ['--cdrom', notIso, '--cdrom', image])).code).toBe(0);
    expect(await record(paths)).toMatchObject({
      outcome: 'applied',
      transport: 'iso',
      reasons: [`${notIso} not read: ${notIso}: no ISO 9660 volume descriptor at sector 16 (no "CD001")`],
    });
  });
});
