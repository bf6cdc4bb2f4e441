import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_BASE_URL, loadConfig } from '@clgw/core/config.js';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-cfg-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('agent configuration', () => {
  it('defaults the base URL to the vendor download server and keeps the rest', async () => {
    const paths = appliancePaths(dir);
    await writeFileAtomic(paths.config, JSON.stringify({ platform: 'kvm' }));
    const cfg = await loadConfig(paths, {});
    expect(cfg).toMatchObject({
      platform: 'kvm',
      baseUrl: DEFAULT_BASE_URL,
      reboot: 'systemd',
      updateAtBoot: true,
    });
  });

  it.each([
    [{ platform: 'cloud' }, 'platform'],
    [{ platform: 'kvm', baseUrl: 'http://mirror.example/' }, 'baseUrl'],
    [{ platform: 'kvm', surprise: 1 }, 'surprise'],
    [{ platform: 'kvm', http: { retries: 99 } }, 'http.retries'],
    // The presence code's lifetime and grace can only be made shorter than the defaults.
    [{ platform: 'kvm', presence: { lifetimeMs: 10 * 60_000 } }, 'presence.lifetimeMs'],
    [{ platform: 'kvm', presence: { graceMs: 120_000 } }, 'presence.graceMs'],
  ])('rejects %j naming %s and the file', async (cfg, field) => {
    const paths = appliancePaths(dir);
    await writeFileAtomic(paths.config, JSON.stringify(cfg));
    await expect(loadConfig(paths, {})).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(loadConfig(paths, {})).rejects.toThrow(paths.config);
    await expect(loadConfig(paths, {})).rejects.toThrow(
      field === 'surprise' ? /surprise|unrecognized/i : field,
    );
  });

  it('a missing file is a clear error', async () => {
    await expect(loadConfig(appliancePaths(dir), {})).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('agent log', () => {
  it('writes JSON lines and rotates by size, keeping a bounded number of files', async () => {
    const file = path.join(dir, 'clgw.log');
    const log = fileLogger({ file, clock: new ManualClock(), maxBytes: 2000, keep: 2 });
    for (let i = 0; i < 100; i++) log.info('line', { i, pad: 'x'.repeat(50) });
    await log.flush();
    const files = (await fs.readdir(dir)).sort();
    expect(files).toEqual(['clgw.log', 'clgw.log.1', 'clgw.log.2']);
    let total = 0;
    for (const f of files) {
      const text = await fs.readFile(path.join(dir, f), 'utf8');
      total += text.length;
      for (const line of text.trim().split('\n'))
        expect(JSON.parse(line)).toMatchObject({ level: 'info', msg: 'line' });
    }
    expect(total).toBeLessThanOrEqual(3 * 2000);
    const last = (await fs.readFile(file, 'utf8')).trim().split('\n').pop()!;
    expect(JSON.parse(last).i).toBe(99);
  });
});
