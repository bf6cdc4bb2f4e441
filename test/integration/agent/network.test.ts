/**
 * Network settings through the CLI and the local API of the real agent process: saved on the
 * data partition, rendered for systemd-networkd and the hostname, refused with the field and
 * the reason, kept by a data reset, and a change cut off after its save finished at the next start.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, startAgent, until, type World } from '../../support/appliance.js';
import { CLI, rawPost as post, runClgw, unwrap } from '../../support/cli.js';

let world: World;
let appliance: ReturnType<typeof runAppliance> | undefined;

/** The error answer of the API. */
interface ApiError {
  error: { code: string; message: string; details: { problems: { field: string }[] } };
}

const clgw = (args: string[]) => runClgw(world.root, args);
const rawPost = (endpoint: string, body: string) => post<ApiError>(world.paths.socket, endpoint, body);

async function files(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await fs.readdir(world.paths.networkDir).catch(() => [])) {
    out[name] = await fs.readFile(path.join(world.paths.networkDir, name), 'utf8');
  }
  return out;
}

beforeAll(async () => {
  await fs.access(CLI); // built by `make test`
  world = await makeWorld({ boot: false });
  appliance = runAppliance({ root: world.root, say: () => undefined });
  const client = new AgentClient(world.paths.socket, 5000);
  await until(
    async () => ((await client.status()).state === 'idle' ? true : undefined),
    'the agent to start',
  );
});

afterAll(async () => {
  await appliance?.stop();
  await world?.close();
});

describe('network settings on the running agent', () => {
  it('a factory-fresh appliance runs DHCP and has written nothing', async () => {
    const r = await clgw(['network']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('hostname: cloudlink-gateway\nIPv4:     DHCP (factory default)\n');
    expect(await files()).toEqual({});
  });

  it('sets a static address: saved, rendered, shown by status', async () => {
    const r = await clgw([
      'network',
      '--static',
      '--address',
      '10.0.0.20',
      '--netmask',
      '255.255.255.0',
      '--gateway',
      '10.0.0.1',
      '--dns',
      '10.0.0.53, 9.9.9.9',
      '--hostname',
      'gw-hq',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(unwrap(r.stdout)).toContain(
      'hostname gw-hq, static 10.0.0.20/24 via 10.0.0.1, DNS 10.0.0.53, 9.9.9.9',
    );
    const f = await files();
    expect(Object.keys(f).sort()).toEqual(['10-clgw.network', 'hostname', 'settings.json']);
    expect(JSON.parse(f['settings.json']!)).toEqual({
      hostname: 'gw-hq',
      ipv4: {
        mode: 'static',
        address: '10.0.0.20',
        prefixLength: 24,
        gateway: '10.0.0.1',
        dns: ['10.0.0.53', '9.9.9.9'],
      },
    });
    expect(f['10-clgw.network']).toContain('[Match]\nName=eth0\n');
    expect(f['10-clgw.network']).toContain(
      'Address=10.0.0.20/24\nGateway=10.0.0.1\nDNS=10.0.0.53\nDNS=9.9.9.9\n',
    );
    expect(f.hostname).toBe('gw-hq\n');
    const status = await clgw(['status']);
    expect(status.stdout).toContain('network:      gw-hq, static 10.0.0.20/24 via 10.0.0.1');
  });

  it('refuses a bad value naming the field and why, and changes nothing', async () => {
    const before = await files();
    const r = await clgw([
      'network',
      '--static',
      '--address',
      '10.0.0.20',
      '--netmask',
      '24',
      '--gateway',
      '10.0.1.1',
    ]);
    expect(r.code).toBe(2);
    expect(unwrap(r.stderr)).toContain(
      'SETTING_INVALID: network setting gateway 10.0.1.1 is outside the subnet 10.0.0.0/24',
    );
    const api = await rawPost(
      '/v1/network',
      JSON.stringify({ hostname: 'gw_hq', mode: 'static', address: '10.0.0.255', netmask: '24' }),
    );
    expect(api.status).toBe(400);
    expect(api.json.error.code).toBe('SETTING_INVALID');
    expect(api.json.error.details.problems.map((p) => p.field)).toEqual(['hostname', 'address']);
    expect((await rawPost('/v1/network', '[1]')).status).toBe(400);
    expect((await rawPost('/v1/network', '{')).status).toBe(400);
    expect(await files()).toEqual(before);
  });

  it('changes the hostname alone, keeping the address', async () => {
    expect((await clgw(['network', '--hostname', 'gw-branch'])).code).toBe(0);
    const f = await files();
    expect(f.hostname).toBe('gw-branch\n');
    expect(f['10-clgw.network']).toContain('Address=10.0.0.20/24');
    expect((await clgw(['network', '--address', '10.0.0.21'])).stderr).toContain('--address needs --static');
  });

  it('a data reset keeps the network settings', async () => {
    const before = await files();
    expect((await clgw(['data-reset', '--confirm'])).code).toBe(0);
    expect(await files()).toEqual(before);
  });

  it('back to DHCP', async () => {
    expect((await clgw(['network', '--dhcp'])).code).toBe(0);
    const f = await files();
    expect(f['10-clgw.network']).toContain('\nDHCP=ipv4\n');
    expect(f['10-clgw.network']).not.toContain('Address=');
    expect(f.hostname).toBe('gw-branch\n');
  });
});

describe('network settings at start-up', () => {
  it('finishes a change cut off after its save: the rendered files follow settings.json', async () => {
    const w = await makeWorld();
    try {
      await writeJsonAtomic(w.paths.networkSettings, {
        hostname: 'gw-cut',
        ipv4: { mode: 'static', address: '192.168.5.9', prefixLength: 24, dns: [] },
      });
      await fs.writeFile(w.paths.hostnameFile, 'gw-old\n');
      const running = await startAgent(w);
      await running.stop();
      expect(await fs.readFile(w.paths.hostnameFile, 'utf8')).toBe('gw-cut\n');
      expect(await fs.readFile(w.paths.networkUnit, 'utf8')).toContain('Address=192.168.5.9/24\n');
    } finally {
      await w.close();
    }
  });

  it('saved settings that no longer validate are reported and the factory default applies', async () => {
    const w = await makeWorld();
    try {
      await writeJsonAtomic(w.paths.networkSettings, {
        hostname: 'gw',
        ipv4: { mode: 'static', address: '10.0.0.0', prefixLength: 24, dns: [] },
      });
      await fs.writeFile(w.paths.networkUnit, 'stale\n');
      const running = await startAgent(w);
      const status = await running.agent.status();
      await running.stop();
      expect(status.network).toMatchObject({ source: 'default', summary: 'DHCP' });
      expect(status.network.error).toContain('network setting address 10.0.0.0 is the network address');
      await expect(fs.access(w.paths.networkUnit)).rejects.toThrow();
    } finally {
      await w.close();
    }
  });
});
