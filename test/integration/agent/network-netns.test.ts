/**
 * Network settings applied to a real interface: one end of a veth pair, named eth0 inside a
 * network namespace of the test's own, configured by the agent with `ip` and read back with
 * `ip -j addr` / `ip -j route`. Nothing outside the namespace is touched.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from '@clgw/core/platform/exec.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, type RunningAgent, startAgent, type World } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const ns = `clgw-t-${randomBytes(3).toString('hex')}`;
const hostEnd = `clgwv${randomBytes(3).toString('hex')}`;

async function unavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    await execFile('ip', ['netns', 'add', ns]);
    await execFile('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    return undefined;
  } catch (e) {
    return `cannot create a network namespace with a veth pair: ${(e as Error).message}`;
  }
}

const skip = await unavailable();
if (skip) recordSkip('test/integration/agent/network-netns.test.ts', skip);

let world: World;
let running: RunningAgent;

async function addresses(): Promise<string[]> {
  const { stdout } = await execFile('ip', ['-j', '-n', ns, 'addr', 'show', 'dev', 'eth0']);
  const links = JSON.parse(stdout) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
  return links.flatMap((l) =>
    l.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  );
}

async function defaultRoute(): Promise<string | undefined> {
  const { stdout } = await execFile('ip', ['-j', '-n', ns, 'route', 'show', 'default']);
  return (JSON.parse(stdout) as { gateway?: string }[])[0]?.gateway;
}

describe.skipIf(skip)('network settings on an interface in a network namespace', () => {
  beforeAll(async () => {
    world = await makeWorld({ config: { networkApply: 'netns', netns: ns, lanInterface: 'eth0' } });
    running = await startAgent(world);
  });

  afterAll(async () => {
    await running?.stop();
    await world?.close();
    await execFile('ip', ['netns', 'del', ns]).catch(() => undefined); // takes the veth pair with it
  });

  it('a static address, netmask and gateway land on the interface', async () => {
    await running.agent.changeNetwork({
      hostname: 'gw-hq',
      mode: 'static',
      address: '10.0.0.20',
      netmask: '255.255.255.0',
      gateway: '10.0.0.1',
      dns: '10.0.0.53',
    });
    expect(await addresses()).toEqual(['10.0.0.20/24']);
    expect(await defaultRoute()).toBe('10.0.0.1');
  });

  it('another address replaces it; DHCP leaves no static address behind', async () => {
    await running.agent.changeNetwork({
      hostname: 'gw-hq',
      mode: 'static',
      address: '192.168.7.9',
      netmask: '26',
    });
    expect(await addresses()).toEqual(['192.168.7.9/26']);
    expect(await defaultRoute()).toBeUndefined();
    await running.agent.changeNetwork({ hostname: 'gw-hq', mode: 'dhcp' });
    expect(await addresses()).toEqual([]);
  });
});
