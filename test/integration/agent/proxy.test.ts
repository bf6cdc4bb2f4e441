/**
 * The agent behind a real HTTP proxy (tinyproxy with Basic authentication) on loopback: the
 * setting through the CLI, every request of a check tunnelled through it, a wrong password named
 * as such, and back to direct.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, until, type World } from '../../support/appliance.js';
import { runClgw, unwrap } from '../../support/cli.js';
import { recordSkip } from '../../support/skip.js';
import { startTinyproxy, type TinyProxy, tinyproxyUnavailable } from '../../support/tinyproxy.js';

const skip = await tinyproxyUnavailable();
if (skip) recordSkip('test/integration/agent/proxy.test.ts', skip);

let world: World;
let proxy: TinyProxy;
let appliance: ReturnType<typeof runAppliance> | undefined;
let client: AgentClient;
const clgw = (args: string[]) => runClgw(world.root, args);

describe.skipIf(skip)('the agent behind a proxy', () => {
  beforeAll(async () => {
    world = await makeWorld({ boot: false });
    await world.publish('1.1.0');
    proxy = await startTinyproxy({
      user: 'clgw',
      password: 'S3cret-pass_01',
      connectPorts: [world.mirror.port],
    });
    appliance = runAppliance({ root: world.root, say: () => undefined });
    client = new AgentClient(world.paths.socket, 10_000);
    await until(
      async () => ((await client.status()).state === 'idle' ? true : undefined),
      'the agent to start',
    );
  }, 120_000);

  afterAll(async () => {
    await appliance?.stop();
    await proxy?.close();
    await world?.close();
  });

  it('sets the proxy (the password never shown, the file readable by root only) and checks through it', async () => {
    const set = await clgw([
      'proxy',
      'set',
      '--server',
      '127.0.0.1',
      '--port',
      String(proxy.port),
      '--user',
      'clgw',
      '--password',
      'S3cret-pass_01',
    ]);
    expect(set.stderr).toBe('');
    expect(set.stdout).toBe(`proxy: 127.0.0.1:${proxy.port} as clgw (password set)\n`);
    expect((await fs.stat(world.paths.proxy)).mode & 0o777).toBe(0o600);
    expect((await clgw(['proxy'])).stdout).not.toContain('S3cret');
    const check = await clgw(['check']);
    expect(check.stderr).toBe('');
    expect(check.stdout).toContain('gateway OS 1.1.0 is available');
    expect(await proxy.log()).toContain(`127.0.0.1:${world.mirror.port}`);
  });

  it('a wrong password is named as such', async () => {
    await clgw([
      'proxy',
      'set',
      '--server',
      '127.0.0.1',
      '--port',
      String(proxy.port),
      '--user',
      'clgw',
      '--password',
      'wrong',
    ]);
    const check = await clgw(['check']);
    expect(check.code).toBe(1);
    expect(unwrap(check.stderr)).toContain(
      `PROXY_AUTH_FAILED: proxy 127.0.0.1:${proxy.port} refused the user and password (HTTP 40`,
    );
  });

  it('refuses a bad setting naming the field, and goes direct when turned off', async () => {
    const bad = await clgw(['proxy', 'set', '--server', 'proxy..example', '--port', '3128']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('SETTING_INVALID: proxy server');
    expect((await clgw(['proxy', 'set', '--server', 'proxy.example', '--port', '99999'])).stderr).toContain(
      'proxy port must be',
    );
    expect((await clgw(['proxy', 'off'])).stdout).toBe('proxy: none (direct connections)\n');
    await expect(fs.access(world.paths.proxy)).rejects.toThrow();
    // Counted: the tunnels asked for. The proxy may still log the close of an earlier tunnel (the
    // agent keeps idle connections for a few seconds), which is not traffic through it.
    const tunnels = async () => (await proxy.log()).split('\n').filter((l) => / CONNECT \S+ HTTP\//.test(l));
    const before = await tunnels();
    expect((await clgw(['check'])).stdout).toContain('gateway OS 1.1.0 is available');
    expect(await tunnels()).toEqual(before);
  });
});
